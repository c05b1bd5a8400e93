"""The reference's ``HuggingFaceBackend(model_name, device, enable_kv_cache)``, on finite-memory-hf."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Any

from .._errors import BackendError, BackendNotInstalled
from ._backends import LLMBackend, like, token_rows
from ._transcript import TRANSCRIPT_TEMPLATE


class HuggingFaceBackend(LLMBackend):
    """A local causal LM, with the reference's methods and finite-memory-hf underneath.

    Args:
        model_name: a folder saved with ``save_pretrained``, or a model id already in the
            local Hugging Face cache (nothing is downloaded here).
        device: where the model runs (``"cpu"``, ``"cuda"``...).
        enable_kv_cache: keep the KV cache of the last sequence and reuse its longest
            common prefix with the next prompt.

    In a :class:`~finite_memory.compat.CompleteFiniteMemoryLLM` the chat goes through
    :class:`finite_memory_hf.HFBackend` (``chat_backend``): budgets in the model's own
    chat-template tokens, a plain ``role: content`` transcript for a base model without
    a template (gpt2), and cross-turn KV reuse. ``generate``/``generate_stream`` keep
    the reference's raw token-id interface: greedy decoding, with the same reuse across
    calls. ``get_cache_stats`` counts calls and turns that reused the cache (hits) or
    had one and could not (misses).
    """

    def __init__(self, model_name: str = "gpt2", device: str = "cpu", enable_kv_cache: bool = True) -> None:
        try:
            hf = import_module("finite_memory_hf")
            kv = import_module("finite_memory_hf._kv")
        except ImportError:
            raise BackendNotInstalled(
                "HuggingFaceBackend needs finite-memory-hf: pip install 'finite-memory-core[hf]'"
            ) from None
        self.model_name = model_name
        self.device = device
        self.enable_kv_cache = bool(enable_kv_cache)
        self.chat_backend = hf.HFBackend(
            model_name, device=device, reuse_cache=self.enable_kv_cache, chat_template=_template_for(model_name)
        )
        self.model = self.chat_backend.model
        self.tokenizer = self.chat_backend.tokenizer.hf
        self._stop_ids: frozenset[int] = self.chat_backend._stop_ids
        self._kv = kv.KVState(self.model)
        self._hits = 0
        self._misses = 0
        self._cached = 0

    def __repr__(self) -> str:
        return f"HuggingFaceBackend({self.model_name!r}, device={self.device!r})"

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(list(tokens), skip_special_tokens=True))

    def get_model_name(self) -> str:
        return self.model_name

    def get_cache_stats(self) -> dict[str, int]:
        """``cache_hits``, ``cache_misses`` and ``cached_tokens`` (held by the cache last used)."""
        return {"cache_hits": self._hits, "cache_misses": self._misses, "cached_tokens": self._cached}

    def record_reuse(self, reused: int, held: int) -> None:
        """Count one prompt that reused ``reused`` cached tokens, after which the cache holds ``held``."""
        if self.enable_kv_cache:
            if reused > 0:
                self._hits += 1
            elif self._cached > 0:
                self._misses += 1
        self._cached = held if self.enable_kv_cache else 0

    def generate(self, input_ids: Any, max_new_tokens: int, **kwargs: Any) -> dict[str, Any]:
        """Greedy ids after ``input_ids``: ``{"sequences": prompt ids + new ids}`` (a tensor for a tensor)."""
        prompt = self._prompt(input_ids, kwargs)
        generated = [token for token, _ in self._greedy(prompt, max_new_tokens)]
        rows = [prompt + generated]
        return {"sequences": like(input_ids, rows) if hasattr(input_ids, "new_tensor") else _tensor(rows)}

    def generate_stream(self, input_ids: Any, max_new_tokens: int, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Yield ``{"token_id", "token_text", "is_final"}`` per greedy token (the end token is yielded, final)."""
        prompt = self._prompt(input_ids, kwargs)
        for token, final in self._greedy(prompt, max_new_tokens):
            yield {"token_id": token, "token_text": self.decode([token]), "is_final": final}

    def _prompt(self, input_ids: Any, options: dict[str, Any]) -> list[int]:
        if options:
            raise TypeError(f"generate() decodes greedily and takes no options; got {', '.join(sorted(options))}")
        rows = token_rows(input_ids)
        if len(rows) != 1 or not rows[0]:
            raise ValueError("input_ids must hold one non-empty sequence ([1, n])")
        return rows[0]

    def _greedy(self, prompt: list[int], max_new_tokens: int) -> Iterator[tuple[int, bool]]:
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        kv = self._kv
        if not self.enable_kv_cache:
            kv.clear()
        reuse = kv.fit(prompt)
        self.record_reuse(reuse.reused, len(prompt))
        if max_new_tokens == 0:
            return
        try:
            logits = kv.run(prompt[reuse.reused :])
            for step in range(max_new_tokens):
                token = int(logits.argmax().item())
                final = token in self._stop_ids or step == max_new_tokens - 1
                yield token, final
                if final:
                    break
                logits = kv.run([token])
        except Exception as exc:
            kv.clear()
            raise BackendError(f"{self.model_name} failed while generating: {exc}") from exc
        finally:
            if not self.enable_kv_cache:
                kv.clear()
            self._cached = len(kv.ids or []) if self.enable_kv_cache else 0


def _template_for(model_name: str) -> str | None:
    """None when the model's tokenizer has a chat template, else the plain transcript layout."""
    try:
        tokenizer = import_module("transformers").AutoTokenizer.from_pretrained(model_name)
    except (OSError, ValueError):
        return None  # HFBackend reports the missing model with a clear error
    return None if getattr(tokenizer, "chat_template", None) else TRANSCRIPT_TEMPLATE


def _tensor(rows: list[list[int]]) -> Any:
    torch = import_module("torch")
    return torch.tensor(rows, dtype=torch.long)
