"""Exact token counts for an open model from its local ``tokenizer.json`` and chat template, with no torch.

For models served by vLLM, SGLang, TGI or ``transformers serve``: the ``tokenizers``
package reads ``tokenizer.json``, and ``jinja2`` renders the model's chat template as
transformers does (sandboxed, ``trim_blocks``, ``lstrip_blocks``), so a prompt's count is
the number of ids the server will feed its model. Install with
``pip install "finite-memory-api[tokenizers]"``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finite_memory import Message

_PROBE = "probe"


class LocalTokenizer:
    """Counts with a model's own ``tokenizer.json`` and chat template.

    Args:
        path: the model's folder (with ``tokenizer.json`` and ``chat_template.jinja`` or
            ``tokenizer_config.json``), or the ``tokenizer.json`` file itself.
        chat_template: a template to use instead of the folder's.
        template_kwargs: extra variables the template reads (``enable_thinking``...), as
            the server is started with.

    Without a chat template the prompt is counted as its contents plus a fixed
    ``per_message`` (4) and ``per_prompt`` (3) overhead.
    """

    per_message = 4
    per_prompt = 3

    def __init__(
        self,
        path: str | Path,
        *,
        chat_template: str | None = None,
        template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError(
                'a local tokenizer needs tokenizers: pip install "finite-memory-api[tokenizers]"'
            ) from None
        where = Path(path)
        folder = where if where.is_dir() else where.parent
        file = where / "tokenizer.json" if where.is_dir() else where
        if not file.is_file():
            raise ValueError(f"no tokenizer.json at {str(where)[:200]!r}")
        self.path = file
        self._tokenizer = Tokenizer.from_file(str(file))
        # a tokenizer.json saved for batches pads (all-MiniLM's to 128) or truncates: a count needs neither
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        config = _read_json(folder / "tokenizer_config.json")
        template = chat_template or _template(folder, config)
        self._variables = {
            **{k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)},
            **(template_kwargs or {}),
        }
        self._template = _compile(template) if template else None
        self._overheads: dict[str, int] = {}
        self._base = self._render_count([]) if self._template is not None else self.per_prompt

    def __repr__(self) -> str:
        return f"LocalTokenizer(path={str(self.path)!r}, chat_template={self._template is not None})"

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids) if text else 0

    def count_messages(self, messages: Sequence[Message]) -> int:
        if self._template is None:
            return self.per_prompt + sum(self.count_message(m) for m in messages)
        return self._render_count(messages)

    def count_message(self, message: Message) -> int:
        """Tokens one message adds to a prompt: the template rendering it alone, less the empty prompt.

        A template that refuses a message on its own (alternation rules) gets its content and
        tool fields plus the role's measured overhead instead; the memory's final check of a
        whole context always renders it exactly.
        """
        if self._template is not None:
            try:
                return max(0, self._render_count([message]) - self._base)
            except Exception:  # jinja2 raises TemplateError (raise_exception) and others for unexpected input
                pass
        tokens = self.count(message.content) + self._overhead(message.role)
        if message.tool_calls:
            tokens += self.count(json.dumps(message.tool_calls, ensure_ascii=False))
        if message.tool_call_id:
            tokens += self.count(message.tool_call_id)
        return tokens

    def count_tools(self, tools: Any) -> int:
        """Tokens a set of tool schemas adds to a prompt, as the template renders them."""
        if self._template is None:
            return self.count(json.dumps(tools, ensure_ascii=False))
        probe = [Message("user", _PROBE)]
        try:
            return max(0, self._render_count(probe, tools=tools) - self._render_count(probe))
        except Exception:  # a template that cannot render tools on their own
            return self.count(json.dumps(tools, ensure_ascii=False))

    def _overhead(self, role: str) -> int:
        if self._template is None:
            return self.per_message
        cost = self._overheads.get(role)
        if cost is None:
            probe = Message(role, _PROBE, tool_call_id="call_0" if role == "tool" else None)
            try:
                cost = self._render_count([probe]) - self._base - self.count(_PROBE)
            except Exception:  # a template that refuses this role on its own (alternation rules)
                cost = self._overheads.get("user", self.per_message) if role != "user" else self.per_message
            cost = max(0, cost)
            self._overheads[role] = cost
        return cost

    def _render_count(self, messages: Sequence[Message], tools: Any = None) -> int:
        assert self._template is not None
        text = self._template.render(
            messages=[_template_message(m) for m in messages],
            tools=tools,
            add_generation_prompt=True,
            **self._variables,
        )
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _template(folder: Path, config: dict[str, Any]) -> str | None:
    file = folder / "chat_template.jinja"
    if file.is_file():
        return file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _template_message(message: Message) -> dict[str, Any]:
    """A message as the server hands it to the template (tool-call arguments parsed, as transformers does)."""
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        calls = []
        for call in message.tool_calls:
            function = dict(call["function"])
            with contextlib.suppress(ValueError):
                function["arguments"] = json.loads(function.get("arguments") or "{}")
            calls.append({**call, "function": function})
        data["tool_calls"] = calls
    if message.tool_call_id:
        data["tool_call_id"] = message.tool_call_id
    return data


def _compile(template: str) -> Any:
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ImportError('a chat template needs jinja2: pip install "finite-memory-api[tokenizers]"') from None

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
    ) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format: str) -> str:
        from datetime import datetime

        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    return environment.from_string(template)
