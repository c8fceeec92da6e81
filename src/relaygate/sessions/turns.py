"""Stored turns and the one trimming rule both backends apply.

A turn is one exchange: the messages a request brought (the new user message, or the tool results
answering the previous turn's tool calls) and the assistant's answer, stored whole. Trimming drops
whole turns, oldest first, until at most ``max_turns`` remain and their token estimate fits
``max_tokens`` (0: no cap); then any turn left at the front that opens with a tool result is
dropped too, since its tool call went with an older turn and the upstream would reject it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from relaygate.core.errors import InvalidRequestError
from relaygate.core.estimate import estimate_message_tokens
from relaygate.core.types import Message, ToolResultBlock, ToolUseBlock

SESSION_HEADER = "x-relaygate-session"
MAX_SESSION_ID_CHARS = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_session_id(value: str) -> str:
    """The caller's session id, or a 400 naming the header."""
    if not value:
        raise InvalidRequestError(f"{SESSION_HEADER}: must not be empty", param=SESSION_HEADER)
    if len(value) > MAX_SESSION_ID_CHARS:
        raise InvalidRequestError(
            f"{SESSION_HEADER}: at most {MAX_SESSION_ID_CHARS} characters, got {len(value)}",
            param=SESSION_HEADER,
        )
    if _CONTROL.search(value):
        raise InvalidRequestError(
            f"{SESSION_HEADER}: must not contain control characters", param=SESSION_HEADER
        )
    return value


@dataclass(slots=True, frozen=True)
class SessionPolicy:
    """How much history one request keeps: turns, a token cap (0: none), seconds after the last
    write."""

    max_turns: int = 10
    max_tokens: int = 0
    ttl_seconds: float = 3600.0


@dataclass(slots=True, frozen=True)
class Turn:
    """One exchange, stored whole, with its token estimate (so trimming needs no re-count)."""

    messages: tuple[Message, ...]
    tokens: int

    @classmethod
    def of(cls, messages: Sequence[Message]) -> Turn:
        return cls(tuple(messages), estimate_message_tokens(messages))

    @property
    def opens_with_tool_result(self) -> bool:
        """A tool result before the turn's first assistant message answers an older turn."""
        for message in self.messages:
            if message.role == "assistant":
                return False
            if any(isinstance(b, ToolResultBlock) for b in message.content):
                return True
        return False


def trim(turns: Sequence[Turn], policy: SessionPolicy) -> list[Turn]:
    """The newest turns that fit ``policy``, never opening with an orphaned tool result."""
    kept = list(turns[-policy.max_turns :])
    start = 0
    if policy.max_tokens:
        total = sum(t.tokens for t in kept)
        while start < len(kept) and total > policy.max_tokens:
            total -= kept[start].tokens
            start += 1
    while start < len(kept) and kept[start].opens_with_tool_result:
        start += 1
    return kept[start:]


def history(turns: Sequence[Turn]) -> tuple[Message, ...]:
    """The turns' messages in order: what is prepended to a request's own."""
    return tuple(m for turn in turns for m in turn.messages)


def answerable(history: tuple[Message, ...], asked: tuple[Message, ...]) -> tuple[Message, ...]:
    """``history`` without the tool calls that no tool result answers before the next assistant
    message (in the history, or in ``asked`` for the last answer).

    Upstreams reject a tool call not followed by its result; a caller that moved on from one
    would otherwise get a 400 on every later request of the session. The stored turns keep it.
    """
    if not any(isinstance(b, ToolUseBlock) for m in history for b in m.content):
        return history
    following = (*history, *asked)
    out: list[Message] = []
    for index, message in enumerate(history):
        if message.role == "assistant":
            answered = _answered_after(following, index + 1)
            message = Message(
                "assistant",
                tuple(
                    b
                    for b in message.content
                    if not isinstance(b, ToolUseBlock) or b.id in answered
                ),
            )
            if not message.content:
                continue
        out.append(message)
    return tuple(out)


def _answered_after(messages: tuple[Message, ...], start: int) -> set[str]:
    """Tool-use ids answered from ``start`` up to the next assistant message."""
    answered: set[str] = set()
    for message in messages[start:]:
        if message.role == "assistant":
            break
        answered.update(b.tool_use_id for b in message.content if isinstance(b, ToolResultBlock))
    return answered
