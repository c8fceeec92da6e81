"""A conversation session's history put before a request's own messages, in both its forms.

The neutral messages get it for a translated upstream; the caller's wire body (``raw``) gets it
encoded in the caller's own dialect, so a same-dialect upstream still receives the caller's body
with every field the gateway does not model. Both place it after any leading system turns.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from relaygate.core.types import ChatRequest, Message
from relaygate.providers.anthropic.translate import messages_wire as anthropic_messages
from relaygate.providers.openai.request import messages_wire as openai_messages

_SYSTEM_ROLES = frozenset({"system", "developer"})


def with_history(req: ChatRequest, history: tuple[Message, ...]) -> ChatRequest:
    if not history:
        return req
    at = _leading_system(m.role for m in req.messages)
    messages = (*req.messages[:at], *history, *req.messages[at:])
    raw_messages = req.raw.get("messages")
    if not isinstance(raw_messages, list):  # nothing to relay as is: build from the neutral form
        return replace(req, messages=messages, raw={})
    wire = anthropic_messages(history) if req.dialect == "anthropic" else openai_messages(history)
    at = _leading_system(m.get("role") if isinstance(m, dict) else None for m in raw_messages)
    raw: dict[str, Any] = {**req.raw, "messages": [*raw_messages[:at], *wire, *raw_messages[at:]]}
    return replace(req, messages=messages, raw=raw)


def _leading_system(roles: Any) -> int:
    """How many system (or developer) turns open the conversation."""
    count = 0
    for role in roles:
        if role not in _SYSTEM_ROLES:
            break
        count += 1
    return count
