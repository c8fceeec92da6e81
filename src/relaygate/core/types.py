"""The dialect-neutral chat model every dialect decodes into and every provider builds from.

Content is modelled on Anthropic's block structure because it is the richer of the two: an OpenAI
message with ``tool_calls`` becomes an assistant message with text and ``ToolUseBlock`` blocks, and
an OpenAI ``role: tool`` message becomes a user message holding a ``ToolResultBlock``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from relaygate.core.frozen import quick_init

JSONObject = dict[str, Any]

Role = Literal["system", "user", "assistant"]
DialectName = Literal["openai", "anthropic"]


@dataclass(slots=True, frozen=True)
class TextBlock:
    text: str
    cache_control: JSONObject | None = None


@dataclass(slots=True, frozen=True)
class ImageBlock:
    """An image given inline (``data`` is base64) or by ``url``."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None


@dataclass(slots=True, frozen=True)
class ToolUseBlock:
    id: str
    name: str
    input: JSONObject


@dataclass(slots=True, frozen=True)
class ToolResultBlock:
    tool_use_id: str
    content: tuple[TextBlock | ImageBlock, ...]
    is_error: bool = False
    cache_control: JSONObject | None = None


@dataclass(slots=True, frozen=True)
class ThinkingBlock:
    """Model reasoning; ``signature`` must travel back to Anthropic byte for byte."""

    thinking: str
    signature: str | None = None


@dataclass(slots=True, frozen=True)
class RedactedThinkingBlock:
    data: str


ContentBlock = (
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)


@dataclass(slots=True, frozen=True)
class Message:
    role: Role
    content: tuple[ContentBlock, ...]


@dataclass(slots=True, frozen=True)
class Tool:
    name: str
    description: str | None
    input_schema: JSONObject
    # Provider-specific tool fields (cache_control, defer_loading, ...) for same-dialect relays.
    extra: JSONObject = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class ToolChoice:
    """``auto``: model decides; ``any``: some tool; ``none``: no tools; ``tool``: call ``name``."""

    type: Literal["auto", "any", "none", "tool"]
    name: str | None = None
    disable_parallel: bool = False


@dataclass(slots=True, frozen=True)
class ResponseFormat:
    """``json_object`` or ``json_schema`` (with ``schema``); plain text is ``None``."""

    type: Literal["json_object", "json_schema"]
    name: str | None = None
    schema: JSONObject | None = None
    strict: bool = False


@quick_init
@dataclass(slots=True, frozen=True)
class ChatRequest:
    """One chat request, whatever dialect it arrived in.

    ``raw`` keeps the decoded wire JSON so a provider that speaks the caller's dialect can relay it
    unchanged, unknown fields included. ``extra_headers`` holds dialect headers worth forwarding to
    a same-dialect upstream (``anthropic-version``, ``anthropic-beta``).
    """

    dialect: DialectName
    model: str
    messages: tuple[Message, ...]
    system: tuple[TextBlock, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    thinking: JSONObject | None = None
    metadata: JSONObject | None = None
    user: str | None = None
    raw: JSONObject = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)


class FinishReason(enum.Enum):
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    CONTENT_FILTER = "content_filter"
    PAUSE_TURN = "pause_turn"


# Upstream token counts above this are treated as nonsense and clamped: no request comes near it,
# and an absurd count must not overflow the ledger's 64-bit columns and stall its batches.
TOKEN_COUNT_LIMIT = 10**12


@quick_init
@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts with Anthropic semantics: ``input_tokens`` excludes cache reads and writes.

    OpenAI's ``prompt_tokens`` is ``prompt_total``; its ``cached_tokens`` are ``cache_read_tokens``.
    ``cache_write_1h_tokens`` is the part of ``cache_write_tokens`` written to Anthropic's 1-hour
    cache (priced higher than the default 5-minute one).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def prompt_total(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        """Every token of the exchange, prompt (cached or not) and output: what TPM counts."""
        return self.prompt_total + self.output_tokens

    def merged(self, later: Usage) -> Usage:
        """Combine a stream's start usage with a later report; non-zero later counts win."""
        return Usage(
            input_tokens=later.input_tokens or self.input_tokens,
            output_tokens=later.output_tokens or self.output_tokens,
            cache_read_tokens=later.cache_read_tokens or self.cache_read_tokens,
            cache_write_tokens=later.cache_write_tokens or self.cache_write_tokens,
            reasoning_tokens=later.reasoning_tokens or self.reasoning_tokens,
            cache_write_1h_tokens=later.cache_write_1h_tokens or self.cache_write_1h_tokens,
        )


@quick_init
@dataclass(slots=True, frozen=True)
class ChatResponse:
    id: str
    model: str
    content: tuple[ContentBlock, ...]
    finish_reason: FinishReason
    usage: Usage
    stop_sequence: str | None = None
