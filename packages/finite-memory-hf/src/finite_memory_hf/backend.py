"""``HFBackend``: a local Hugging Face causal LM with exact counting and cross-turn KV-cache reuse."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

from finite_memory import BackendError, Completion, Message, SyncBackend

from ._tokenizer import ChatTemplateTokenizer

_OPTIONS = ("max_new_tokens", "temperature", "top_p", "top_k", "seed", "detached")
_DTYPES = ("float32", "float16", "bfloat16", "auto")
DEFAULT_MAX_NEW_TOKENS = 256


class HFBackend(SyncBackend):
    """A local causal LM loaded with ``from_pretrained``, served turn by turn.

    Args:
        model: a folder with a saved model, or a model id already in the local
            Hugging Face cache.
        device: where to run it (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
        dtype: ``"float32"`` (the default on CPU), ``"bfloat16"``, ``"float16"``, ``"auto"``
            (the checkpoint's own; the default elsewhere) or a ``torch.dtype``.
        reuse_cache: keep the KV cache of the last prompt and reply, and on the next turn
            run only the tokens after the longest common prefix with the new prompt.
            Greedy replies are token-for-token those of a fresh prefill. Default on.
        attention_sink: StreamingLLM-style reuse after an eviction: when the memory drops
            turns from the middle of the prompt, keep the cache of the prompt's start (the
            attention sink) and move the cache of the turns that stayed back in place,
            re-rotating their keys, instead of running them again. Much less prefill after
            evictions, but the moved entries are approximations (they once attended to the
            dropped turns), so replies may differ from a fresh prefill. Only for
            rotary-position models; off by default.
        chat_template: a Jinja chat template for a tokenizer that has none.
        max_context: the most tokens (prompt and reply) to run; defaults to the model's
            ``max_position_embeddings``.
        attn_implementation: passed to ``from_pretrained`` (``"eager"``, ``"sdpa"``...).

    Generation options for ``complete``/``stream``: ``max_new_tokens`` (default 256),
    ``temperature`` (0 or absent = greedy), ``top_p``, ``top_k``, ``seed``, and ``detached``
    (run this prompt on a cache of its own and leave the kept one untouched: side jobs
    such as a summary between two chat turns).
    ``Completion.stats`` holds ``prefill_tokens`` (run through the model this turn),
    ``reused_tokens`` (served from the kept cache), ``moved_tokens`` (of those, moved by
    attention-sink mode), ``generated_tokens``, ``prefill_ms``, ``decode_ms``, ``total_ms``.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: Any = None,
        reuse_cache: bool = True,
        attention_sink: bool = False,
        chat_template: str | None = None,
        max_context: int | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise TypeError(f"model must be a folder or a model id, got {model!r}")
        if not isinstance(device, str):
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
        if max_context is not None and (not isinstance(max_context, int) or max_context <= 0):
            raise ValueError(f"max_context must be a positive int, got {max_context!r}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = _dtype(dtype, device)
        self.name = f"hf:{model}"
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(model)
            kwargs: dict[str, Any] = {"dtype": torch_dtype}
            if attn_implementation is not None:
                kwargs["attn_implementation"] = attn_implementation
            self.model = AutoModelForCausalLM.from_pretrained(model, **kwargs).to(device).eval()
        except (OSError, ValueError) as exc:
            where = "is not a folder" if not os.path.exists(model) else "is a folder but holds no loadable model"
            raise BackendError(
                f"cannot load model {model!r}: it {where} and was not found in the local Hugging Face cache "
                f"(give a folder saved with save_pretrained, or download the model first): {exc}"
            ) from exc
        self.tokenizer: ChatTemplateTokenizer = ChatTemplateTokenizer(hf_tokenizer, chat_template)
        model_limit = getattr(self.model.config, "max_position_embeddings", None)
        if max_context is not None and model_limit and max_context > model_limit:
            raise ValueError(f"max_context {max_context} is above what the model allows ({model_limit})")
        self.max_context: int | None = max_context or model_limit
        self.reuse_cache = bool(reuse_cache)
        from ._kv import KVState, supports_attention_sink

        if attention_sink:
            why = supports_attention_sink(self.model)
            if why:
                raise ValueError(f"attention_sink does not work with {model!r}: {why}")
        self._kv = KVState(self.model, attention_sink=attention_sink)
        self._stop_ids = _stop_ids(self.model, hf_tokenizer)
        self._busy = threading.Lock()

    def __repr__(self) -> str:
        return f"HFBackend({self.name!r}, device={str(self.model.device)!r}, reuse_cache={self.reuse_cache})"

    @property
    def cached_tokens(self) -> list[int]:
        """The token ids whose keys and values the kept cache holds (empty when none)."""
        return list(self._kv.ids or [])

    def reset_cache(self) -> None:
        """Drop the kept KV cache; the next turn prefills its whole prompt."""
        self._kv.clear()

    # -- turns ----------------------------------------------------------------------------

    def complete(self, messages: Sequence[Message], **options: Any) -> Completion:
        pieces = self.stream(messages, **options)
        try:
            for item in pieces:
                if isinstance(item, Completion):
                    return item
        finally:
            pieces.close()  # releases the one-turn lock at once
        raise BackendError(f"{self.name} ended without a reply")  # pragma: no cover - stream always ends so

    def stream(self, messages: Sequence[Message], **options: Any) -> Generator[str | Completion, None, None]:
        settings = _settings(options)
        prompt = self.tokenizer.encode_messages(messages)
        if not prompt:
            raise ValueError("the prompt is empty: give at least one message")
        if self.max_context is not None and len(prompt) + settings["max_new_tokens"] > self.max_context:
            raise ValueError(
                f"the prompt ({len(prompt)} tokens) plus max_new_tokens ({settings['max_new_tokens']}) is longer than "
                f"the model allows ({self.max_context} tokens); give the Memory max_tokens <= {self.max_context}"
            )
        return self._generate(prompt, settings)

    def _generate(self, prompt: list[int], settings: dict[str, Any]) -> Generator[str | Completion, None, None]:
        import torch

        if not self._busy.acquire(blocking=False):
            raise BackendError(f"{self.name} is already generating; one turn at a time per backend")
        try:
            start = time.perf_counter()
            from ._kv import KVState

            kv = KVState(self.model) if settings["detached"] else self._kv
            if not self.reuse_cache:
                kv.clear()
            reuse = kv.fit(prompt)
            try:
                logits = kv.run(prompt[reuse.reused :])
            except Exception as exc:
                kv.clear()
                raise BackendError(f"{self.name} failed on the prompt: {exc}") from exc
            prefill_done = time.perf_counter()
            generator = None
            if settings["seed"] is not None:
                generator = torch.Generator(device=self.model.device).manual_seed(settings["seed"])
            generated: list[int] = []
            text = ""
            finish = "length"
            while True:
                token = _pick(logits, settings, generator)
                if token in self._stop_ids:
                    finish = "stop"
                    break
                generated.append(token)
                decoded = self.tokenizer.hf.decode(generated, skip_special_tokens=True)
                if not decoded.endswith("\ufffd") and len(decoded) > len(text):  # hold back half a character
                    yield decoded[len(text) :]
                    text = decoded
                if len(generated) >= settings["max_new_tokens"]:
                    break
                try:
                    logits = kv.run([token])
                except Exception as exc:
                    kv.clear()
                    raise BackendError(f"{self.name} failed while generating: {exc}") from exc
            final = self.tokenizer.hf.decode(generated, skip_special_tokens=True)
            if len(final) > len(text):
                yield final[len(text) :]
            end = time.perf_counter()
            if not self.reuse_cache:
                kv.clear()  # nothing will be reused: free the memory now
            yield Completion(
                text=final,
                finish_reason=finish,
                usage={"prompt_tokens": len(prompt), "completion_tokens": len(generated)},
                stats={
                    "prefill_tokens": len(prompt) - reuse.reused,
                    "reused_tokens": reuse.reused,
                    "moved_tokens": reuse.moved,
                    "generated_tokens": len(generated),
                    "prefill_ms": (prefill_done - start) * 1000,
                    "decode_ms": (end - prefill_done) * 1000,
                    "total_ms": (end - start) * 1000,
                },
            )
        finally:
            self._busy.release()

    def close(self) -> None:
        """Drop the kept cache (the model stays loaded until the backend is garbage)."""
        self._kv.clear()


def _settings(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"unknown generation options: {', '.join(sorted(unknown))}; allowed: {', '.join(_OPTIONS)}")
    max_new = options.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new!r}")
    temperature = options.get("temperature") or 0.0
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    top_p = options.get("top_p", 1.0)
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    top_k = options.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"top_k must be a positive int, got {top_k!r}")
    seed = options.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return {
        "max_new_tokens": max_new,
        "temperature": float(temperature),
        "top_p": float(top_p),
        "top_k": top_k,
        "seed": seed,
        "detached": bool(options.get("detached", False)),
    }


def _pick(logits: Any, settings: dict[str, Any], generator: Any) -> int:
    """The next token: the argmax when greedy, else a sample (temperature, top-k, top-p)."""
    import torch

    if settings["temperature"] == 0:
        return int(torch.argmax(logits).item())
    scores = logits.float() / settings["temperature"]
    if settings["top_k"] is not None:
        kth = torch.topk(scores, min(settings["top_k"], scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if settings["top_p"] < 1:
        ordered, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(ordered, dim=-1) > settings["top_p"]
        scores = scores.scatter(0, order[drop], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None:
        return torch.float32 if device == "cpu" else "auto"
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return getattr(torch, dtype)
    raise ValueError(f"dtype must be one of {', '.join(_DTYPES)} or a torch.dtype, got {dtype!r}")


def _stop_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)
