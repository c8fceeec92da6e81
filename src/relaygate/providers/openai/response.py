"""Parse an OpenAI-compatible ``chat.completion`` body into a neutral ``ChatResponse``.

Only choice 0 is read. ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning`` (OpenRouter, newer
vLLM) becomes a leading ``ThinkingBlock``. Tool-call arguments that are not a JSON object are kept
as ``{"_raw": "<the string>"}`` so the caller sees what the model wrote; an empty string is ``{}``;
an object nested deeper than the gateway can serialize is a malformed answer (core/json_depth.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from relaygate.core.json_depth import nests_too_deep, too_deep
from relaygate.core.types import (
    TOKEN_COUNT_LIMIT,
    ChatResponse,
    ContentBlock,
    FinishReason,
    JSONObject,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.providers.openai.errors import malformed_response

_FINISH_REASONS = {
    "stop": FinishReason.END_TURN,
    "length": FinishReason.MAX_TOKENS,
    "tool_calls": FinishReason.TOOL_USE,
    "function_call": FinishReason.TOOL_USE,
    "content_filter": FinishReason.CONTENT_FILTER,
}


def parse_response(body: bytes) -> ChatResponse:
    """The neutral answer; a body that is not a chat completion raises a retryable 502."""
    data, choices, message = _answer(body)
    content = _content(message)
    has_tools = any(isinstance(b, ToolUseBlock) for b in content)
    return ChatResponse(
        id=_str(data.get("id")),
        model=_str(data.get("model")),
        content=content,
        finish_reason=finish_reason(choices[0].get("finish_reason"), has_tools),
        usage=parse_usage(data.get("usage")),
    )


def answer_usage(body: bytes) -> Usage:
    """``parse_response(body).usage``, raising as it would, without building the answer: what a
    same-dialect relay, which passes the upstream's bytes on, needs of them."""
    data, _, message = _answer(body)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        # The only content a malformed answer is refused for (``_content``'s other reads
        # cannot fail).
        for ordinal, call in enumerate(calls):
            _tool_call(call, ordinal)
    return parse_usage(data.get("usage"))


def _answer(body: bytes) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """The body, its choices and choice 0's message; a retryable 502 unless it has them."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise malformed_response() from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed_response()
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise malformed_response()
    return data, choices, message


def finish_reason(value: Any, has_tool_calls: bool) -> FinishReason:
    """OpenAI's finish reason; some servers say ``stop`` after tool calls, which means tool use."""
    reason = _FINISH_REASONS.get(value) if isinstance(value, str) else None
    if has_tool_calls and reason in (None, FinishReason.END_TURN):
        return FinishReason.TOOL_USE
    return reason or FinishReason.END_TURN


def parse_usage(value: Any) -> Usage:
    """OpenAI usage -> neutral usage (``input_tokens`` excludes cached prompt tokens)."""
    if not isinstance(value, dict):
        return Usage()
    # Once per answer: the two counts every usage has are read inline (``_int``'s rule), the
    # rest only when their fields are there, and ``Usage`` is built positionally.
    prompt = value.get("prompt_tokens")
    prompt = min(prompt, TOKEN_COUNT_LIMIT) if type(prompt) is int and prompt > 0 else 0
    output = value.get("completion_tokens")
    output = min(output, TOKEN_COUNT_LIMIT) if type(output) is int and output > 0 else 0
    details = value.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    if not cached and "prompt_cache_hit_tokens" in value:
        cached = _int(value["prompt_cache_hit_tokens"])  # DeepSeek
    completion = value.get("completion_tokens_details")
    reasoning = _int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0
    if cached > prompt:
        cached = prompt
    # input, output, cache reads, cache writes, reasoning
    return Usage(prompt - cached, output, cached, 0, reasoning)


def parse_arguments(arguments: Any) -> JSONObject:
    """Tool-call arguments as an object (see the module docstring)."""
    if not isinstance(arguments, str) or not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    if not isinstance(parsed, dict):
        return {"_raw": arguments}
    if nests_too_deep(parsed):
        raise malformed_response(too_deep("tool_calls.function.arguments"))
    return parsed


def reasoning_text(source: dict[str, Any]) -> str | None:
    """The reasoning text of a message or a stream delta, under either field name."""
    value = source.get("reasoning_content")
    if value is None:
        value = source.get("reasoning")
    return value if isinstance(value, str) else None


def _content(message: dict[str, Any]) -> tuple[ContentBlock, ...]:
    blocks: list[ContentBlock] = []
    reasoning = reasoning_text(message)
    if reasoning:
        blocks.append(ThinkingBlock(reasoning))
    text = _text(message.get("content"))
    if text is None:
        refusal = message.get("refusal")
        text = refusal if isinstance(refusal, str) and refusal else None
    calls = message.get("tool_calls")
    calls = calls if isinstance(calls, list) else []
    # An empty content string beside tool calls is no text block (Anthropic rejects empty text).
    if text is not None and (text or not calls):
        blocks.append(TextBlock(text))
    blocks.extend(_tool_call(call, k) for k, call in enumerate(calls))
    return tuple(blocks)


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with an array of text parts
        texts = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return "".join(texts)
    return None


def _tool_call(call: Any, ordinal: int) -> ToolUseBlock:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise malformed_response()
    function = call["function"]
    call_id = call.get("id")
    return ToolUseBlock(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{ordinal}",
        name=_str(function.get("name")),
        input=parse_arguments(function.get("arguments")),
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return min(value, TOKEN_COUNT_LIMIT) if type(value) is int and value > 0 else 0
