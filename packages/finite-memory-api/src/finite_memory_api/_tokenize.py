"""Exact token counts from a server's ``/tokenize`` endpoint (vLLM, llama.cpp)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ._overhead import ChatOverhead
from ._redact import snippet

if TYPE_CHECKING:
    from ._http import HTTPBackend

FLAVORS = ("vllm", "llama.cpp")


class ServerTokenizer(ChatOverhead):
    """Counts text with the model's own tokenizer, through the server that runs it.

    ``flavor`` picks the request form: ``"vllm"`` (``{"model", "prompt"}`` answered
    with ``count``) or ``"llama.cpp"`` (``{"content"}`` answered with ``tokens``).
    Content is counted exactly; the chat format's overhead is ``per_message`` tokens a
    message plus ``per_prompt`` a prompt. Counts are cached per text (``cache_size``
    entries), and the memory counts each message once, so a message costs one request.
    """

    def __init__(
        self,
        backend: HTTPBackend,
        url: str,
        flavor: str,
        *,
        per_message: int = 4,
        per_prompt: int = 3,
        cache_size: int = 4096,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"tokenize must be one of {', '.join(map(repr, FLAVORS))}, got {flavor!r}")
        self.url = url
        self.flavor = flavor
        self.per_message = per_message
        self.per_prompt = per_prompt
        self._backend = backend
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size

    def __repr__(self) -> str:
        return f"ServerTokenizer(url={self.url!r}, flavor={self.flavor!r})"

    def count(self, text: str) -> int:
        if not text:
            return 0
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        count = self._request(text)
        self._cache[text] = count
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return count

    def _request(self, text: str) -> int:
        backend = self._backend
        if self.flavor == "vllm":
            body: dict[str, Any] = {"model": backend.model, "prompt": text, "add_special_tokens": False}
        else:
            body = {"content": text, "add_special": False}
        data = backend._post_json(self.url, body)
        count = data.get("count") if isinstance(data, dict) and "count" in data else None
        if count is None and isinstance(data, dict) and isinstance(data.get("tokens"), list):
            count = len(data["tokens"])
        # a token covers at least one byte, bar a few special tokens: anything else is not a count
        most = len(text.encode("utf-8", "surrogatepass")) + 16
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= most:
            raise backend._error(
                f"{self.url} answered with no believable token count for {len(text)} characters: "
                f"{snippet(str(data), 120)}",
                None,
                0,
            )
        return count
