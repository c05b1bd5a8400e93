"""Build a tiny, random-weight chat model on disk, for tests and benchmarks with no download.

The tokenizer is a byte-level BPE trained locally with the ``tokenizers`` library and
given a ChatML chat template; the model is a small ``LlamaForCausalLM`` with random
weights. Both are saved with ``save_pretrained`` so they load through the real
``from_pretrained`` path, like any model from the hub. The model is not a language
model: its replies are deterministic noise, good for checking mechanics, not quality.
"""

from __future__ import annotations

import os
from pathlib import Path

#: ChatML, as used by many chat models: special tokens around each message.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "if",
    "then",
    "so",
    "because",
    "when",
    "where",
    "who",
    "what",
    "which",
    "how",
    "why",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "will",
    "would",
    "can",
    "could",
    "should",
    "may",
    "might",
    "must",
    "I",
    "you",
    "he",
    "she",
    "it",
    "we",
    "they",
    "me",
    "him",
    "her",
    "us",
    "them",
    "my",
    "your",
    "his",
    "its",
    "our",
    "their",
    "this",
    "that",
    "these",
    "those",
    "here",
    "there",
    "now",
    "today",
    "tomorrow",
    "yesterday",
    "time",
    "day",
    "week",
    "month",
    "year",
    "morning",
    "evening",
    "night",
    "name",
    "city",
    "country",
    "home",
    "work",
    "school",
    "friend",
    "family",
    "mother",
    "father",
    "sister",
    "brother",
    "dog",
    "cat",
    "car",
    "book",
    "music",
    "movie",
    "food",
    "coffee",
    "tea",
    "water",
    "trip",
    "travel",
    "plan",
    "question",
    "answer",
    "yes",
    "no",
    "please",
    "thank",
    "thanks",
    "hello",
    "goodbye",
    "sure",
    "okay",
    "great",
    "good",
    "bad",
    "new",
    "old",
    "big",
    "small",
    "Lisbon",
    "Paris",
    "Berlin",
    "Tokyo",
    "London",
    "Madrid",
    "Rome",
    "Oslo",
    "Alice",
    "Bob",
    "Carol",
    "Dave",
    "Eve",
    "May",
    "June",
    "July",
    "August",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "hundred",
    "thousand",
    "number",
    "list",
    "item",
    "reason",
    "about",
    "remember",
    "told",
    "said",
    "tell",
    "say",
    "know",
    "think",
    "like",
    "love",
    "want",
    "need",
    "go",
    "went",
    "come",
    "came",
    "see",
    "saw",
    "make",
    "made",
]


def _corpus(lines: int = 2000) -> list[str]:
    import random

    rng = random.Random(0)
    text = []
    for i in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 18))]
        text.append(" ".join(words) + rng.choice([".", "?", "!", ","]) + f" {i} {rng.randint(0, 99999)}")
    return text


def build_tiny_model(
    path: str | os.PathLike[str],
    *,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> Path:
    """Save a tiny random Llama chat model and its tokenizer to ``path`` and return it.

    Loadable with ``load_backend(f"hf:{path}")`` or ``AutoModelForCausalLM.from_pretrained``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target = Path(path)
    target.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(target)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(target)
    return target
