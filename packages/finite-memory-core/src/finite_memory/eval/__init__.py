"""Evaluation: replay conversations in LoCoMo's format and measure what a memory keeps."""

from .synthetic import generate_conversation, generate_dataset

__all__ = ["generate_conversation", "generate_dataset"]
