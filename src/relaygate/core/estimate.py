"""A documented, deliberately conservative token estimate for upstreams that cannot count.

Roughly four characters of JSON per token (the usual rule of thumb for English and code), rounded
up, plus a small per-message overhead. It is never 0 for a non-empty prompt: a 0 makes Claude Code
believe the context is empty and stop compacting.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from relaygate.core.types import ChatRequest, Message

CHARS_PER_TOKEN = 4
PER_MESSAGE_TOKENS = 4


def estimate_input_tokens(req: ChatRequest) -> int:
    parts: list[object] = [
        req.raw.get("messages", []),
        req.raw.get("system", ""),
        req.raw.get("tools", []),
    ]
    size = len(orjson.dumps(parts))
    return max(1, -(-size // CHARS_PER_TOKEN) + PER_MESSAGE_TOKENS * len(req.messages))


def estimate_message_tokens(messages: Sequence[Message]) -> int:
    """The same rule over neutral messages (no wire JSON at hand, e.g. stored session turns)."""
    size = len(orjson.dumps(messages))
    return -(-size // CHARS_PER_TOKEN) + PER_MESSAGE_TOKENS * len(messages)
