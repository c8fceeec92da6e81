"""``mock:extract MODE {json}``: answer like a real model asked for JSON does.

The directive is read from the first user message (a pipeline's prompt carries the event's text),
so it still applies when a corrective re-ask comes as a later user message. Modes:

- ``plain``: the JSON alone; ``prose``: the JSON inside sentences; ``fenced``: a ```json block;
- ``broken``: repairable JSON (single quotes, unquoted keys, a trailing comma, the tail cut off);
- ``reask``: ``{}`` (schema-invalid for any schema that requires a field) until re-asked, then
  the JSON; ``never``: prose with no JSON at all, however often it is asked.
"""

from __future__ import annotations

import json
import re
from typing import Any

from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import ChatRequest, TextBlock

MODES = ("plain", "prose", "fenced", "broken", "reask", "never")
_DIRECTIVE = re.compile(r"mock:extract[ \t]+(\w+)")
_DECODER = json.JSONDecoder()


def extraction_answer(req: ChatRequest) -> str | None:
    """The answer the directive asks for, or None when the conversation has none."""
    first = next((m for m in req.messages if m.role == "user"), None)
    if first is None:
        return None
    text = "\n".join(b.text for b in first.content if isinstance(b, TextBlock))
    match = _DIRECTIVE.search(text)
    if match is None:
        return None
    mode = match.group(1)
    if mode not in MODES:
        raise InvalidRequestError(
            f"messages: mock:extract mode '{mode[:20]}' is not one of {', '.join(MODES)}",
            param="messages",
        )
    value = _value(text[match.end() :])
    reasked = any(m.role == "assistant" for m in req.messages)
    return _render(mode, value, reasked)


def _value(rest: str) -> Any:
    rest = rest.lstrip(" \t")
    if not rest.startswith(("{", "[")):
        return {}
    try:
        value, _ = _DECODER.raw_decode(rest)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"messages: the mock:extract directive's JSON is not valid ({exc.msg})",
            param="messages",
        ) from exc
    return value


def _render(mode: str, value: Any, reasked: bool) -> str:
    text = json.dumps(value)
    if mode == "prose":
        return f"Sure! Here is the data I extracted: {text} Let me know if you need more."
    if mode == "fenced":
        return f"Here you go:\n```json\n{json.dumps(value, indent=2)}\n```\n"
    if mode == "broken":
        return _broken(value)
    if mode == "reask":
        return text if reasked else "{}"
    if mode == "never":
        return "I am sorry, I could not find the requested information in this message."
    return text


def _broken(value: Any) -> str:
    """Single-quoted strings, unquoted keys, a trailing comma, and no closing bracket."""
    if not isinstance(value, dict) or not value:
        return json.dumps(value).replace('"', "'")[:-1]
    parts = [f"{key}: {json.dumps(item).replace(chr(34), chr(39))}" for key, item in value.items()]
    return "{" + ", ".join(parts) + ","
