"""The mock's answers: deterministic given the request, as a whole response or as stream events.

``build_reply`` decides the content; ``reply_events`` renders the very same content as a stream,
so a streamed and a non-streamed answer to one request reassemble to the same ``ChatResponse``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from itertools import cycle, islice

import orjson

from relaygate.core.errors import InvalidRequestError
from relaygate.core.events import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    FinishReason,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from relaygate.mock.directives import Directives, UserTurn, last_user_turn, parse_directives
from relaygate.mock.extraction import extraction_answer
from relaygate.mock.schema import schema_instance

GREETING = "Hello from the relaygate mock."
ECHO_CHARS = 200
WORDS_PER_CHUNK = 3
ARG_FRAGMENTS = 3
_WORD = re.compile(r"\S+")
_FILLER = (
    *("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed"),
    *("do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna"),
)
_THINKING_MODES = frozenset({"enabled", "adaptive"})


def build_reply(req: ChatRequest, seq: int, directives: Directives | None = None) -> ChatResponse:
    """The mock's answer to ``req``; ``seq`` numbers the response and tool-call ids."""
    turn = last_user_turn(req)
    wanted = directives if directives is not None else parse_directives(turn.text)
    blocks: list[ContentBlock] = []
    if req.dialect == "anthropic" and _thinking_on(req):
        blocks.append(_thinking_block(turn.text))
    call = _tool_call(req, wanted, seq)
    finish = FinishReason.END_TURN
    if call is not None:
        blocks.append(TextBlock(f"Calling the {call.name} tool."))
        blocks.append(call)
        finish = FinishReason.TOOL_USE
    else:
        blocks.append(TextBlock(_answer_text(req, turn, wanted)))
    content, finish, stop = _limit(blocks, req.stop, req.max_tokens, finish)
    usage = Usage(input_tokens=estimate_input_tokens(req), output_tokens=output_tokens(content))
    prefix = "msg_mock_" if req.dialect == "anthropic" else "chatcmpl-mock-"
    return ChatResponse(f"{prefix}{seq}", req.model, content, finish, usage, stop)


def estimate_input_tokens(req: ChatRequest) -> int:
    """About four characters a token over the messages, system prompt and tools; at least 1."""
    size = len(orjson.dumps((req.messages, req.system, req.tools)))
    return max(1, size // 4)


def output_tokens(content: tuple[ContentBlock, ...]) -> int:
    """Words of text and thinking, plus about four characters a token of tool arguments."""
    total = 0
    for block in content:
        total += _cost(block)
    return max(1, total)


def reply_events(resp: ChatResponse) -> list[StreamEvent]:
    """``resp`` as a stream: start, each block opened, chunked and closed, then delta and stop."""
    start_usage = Usage(
        input_tokens=resp.usage.input_tokens, cache_read_tokens=resp.usage.cache_read_tokens
    )
    events: list[StreamEvent] = [MessageStart(resp.id, resp.model, start_usage)]
    for index, block in enumerate(resp.content):
        events.extend(_block_events(index, block))
    events.append(MessageDelta(resp.finish_reason, resp.usage, resp.stop_sequence))
    events.append(MessageStop())
    return events


def text_chunks(text: str, words: int = WORDS_PER_CHUNK) -> list[str]:
    """``text`` cut after every ``words`` words; the pieces concatenate back to ``text``."""
    cuts = [m.end() for m in islice(_WORD.finditer(text), words - 1, None, words)]
    pieces: list[str] = []
    begin = 0
    for cut in cuts:
        pieces.append(text[begin:cut])
        begin = cut
    if begin < len(text):
        pieces.append(text[begin:])
    return pieces


def _block_events(index: int, block: ContentBlock) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    if isinstance(block, TextBlock):
        events.append(BlockStart(index, TextBlock("")))
        events.extend(TextDelta(index, piece) for piece in text_chunks(block.text))
    elif isinstance(block, ThinkingBlock):
        events.append(BlockStart(index, ThinkingBlock("")))
        events.extend(ThinkingDelta(index, piece) for piece in text_chunks(block.thinking))
        if block.signature:
            events.append(SignatureDelta(index, block.signature))
    elif isinstance(block, ToolUseBlock):
        events.append(BlockStart(index, ToolUseBlock(block.id, block.name, {})))
        args = orjson.dumps(block.input).decode()
        size = max(1, -(-len(args) // ARG_FRAGMENTS))
        events.extend(ToolArgsDelta(index, args[i : i + size]) for i in range(0, len(args), size))
    events.append(BlockStop(index))
    return events


def _thinking_on(req: ChatRequest) -> bool:
    thinking = req.thinking
    mode = thinking.get("type") if thinking is not None else None
    return isinstance(mode, str) and mode in _THINKING_MODES


def _thinking_block(user_text: str) -> ThinkingBlock:
    words = len(_WORD.findall(user_text))
    thinking = f"The user wrote {words} words. A short friendly answer from the mock will do."
    return ThinkingBlock(thinking, thinking_signature(thinking))


def thinking_signature(thinking: str) -> str:
    digest = hashlib.sha256(thinking.encode()).digest()
    return base64.b64encode(b"relaygate-mock-signature:" + digest).decode()


def check_thinking_signatures(req: ChatRequest) -> None:
    """Reject a returned thinking block whose text or signature changed, as Anthropic's API does."""
    for i, message in enumerate(req.messages):
        for j, block in enumerate(message.content):
            if not isinstance(block, ThinkingBlock) or block.signature is None:
                continue
            if block.signature != thinking_signature(block.thinking):
                raise InvalidRequestError(
                    f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block",
                    param=f"messages.{i}.content.{j}.signature",
                )


def _tool_call(req: ChatRequest, wanted: Directives, seq: int) -> ToolUseBlock | None:
    if not req.tools:
        return None
    tool_id = f"toolu_mock_{seq}" if req.dialect == "anthropic" else f"call_mock_{seq}"
    if wanted.tool is not None:
        for tool in req.tools:
            if tool.name == wanted.tool:
                return ToolUseBlock(tool_id, tool.name, wanted.tool_input or {})
    choice = req.tool_choice
    if choice is None or choice.type in ("auto", "none"):
        return None
    if choice.type == "tool":
        chosen = next((t for t in req.tools if t.name == choice.name), None)
    else:
        chosen = req.tools[0]
    if chosen is None:
        return None
    made = schema_instance(chosen.input_schema)
    return ToolUseBlock(tool_id, chosen.name, made if isinstance(made, dict) else {})


def _answer_text(req: ChatRequest, turn: UserTurn, wanted: Directives) -> str:
    extraction = extraction_answer(req)
    if extraction is not None:
        return extraction
    fmt = req.response_format
    if fmt is not None:
        if fmt.type == "json_schema" and fmt.schema is not None:
            return orjson.dumps(schema_instance(fmt.schema)).decode()
        said = turn.text[:ECHO_CHARS]
        return orjson.dumps({"reply": GREETING, "you_said": said}).decode()
    if wanted.recall:
        return "Recall: " + " | ".join(_user_texts(req))
    if turn.tool_result is not None:
        text = f"Tool result received: {turn.tool_result[:ECHO_CHARS]}"
    else:
        text = f"{GREETING} You said: {turn.text[:ECHO_CHARS]}"
    if wanted.words is not None:
        return _fit_words(text, wanted.words)
    return text


def _user_texts(req: ChatRequest) -> list[str]:
    """The text of every user message, oldest first (tool results as ``[result]``)."""
    texts: list[str] = []
    for message in req.messages:
        if message.role == "user":
            parts = [b.text if isinstance(b, TextBlock) else "[result]" for b in message.content]
            texts.append(" ".join(parts))
    return texts


def _fit_words(text: str, count: int) -> str:
    words = _WORD.findall(text)
    if len(words) < count:
        words.extend(islice(cycle(_FILLER), count - len(words)))
    return " ".join(words[:count])


def _limit(
    blocks: list[ContentBlock], stops: tuple[str, ...], max_tokens: int | None, finish: FinishReason
) -> tuple[tuple[ContentBlock, ...], FinishReason, str | None]:
    """Apply stop sequences to text and the ``max_tokens`` budget to everything, in order."""
    budget = max_tokens if max_tokens is not None else 1 << 62
    kept: list[ContentBlock] = []
    for block in blocks:
        stop: str | None = None
        if isinstance(block, TextBlock) and stops:
            block, stop = _apply_stop(block, stops)
        cost = _cost(block)
        if cost > budget:
            cut = _truncate(block, budget)
            if cut is not None:
                kept.append(cut)
            return tuple(kept), FinishReason.MAX_TOKENS, None
        budget -= cost
        if not (isinstance(block, TextBlock) and not block.text):
            kept.append(block)
        if stop is not None:
            return tuple(kept), FinishReason.STOP_SEQUENCE, stop
    return tuple(kept), finish, None


def _apply_stop(block: TextBlock, stops: tuple[str, ...]) -> tuple[TextBlock, str | None]:
    best: tuple[int, str] | None = None
    for stop in stops:
        at = block.text.find(stop) if stop else -1
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    if best is None:
        return block, None
    return TextBlock(block.text[: best[0]]), best[1]


def _cost(block: ContentBlock) -> int:
    if isinstance(block, TextBlock):
        return len(_WORD.findall(block.text))
    if isinstance(block, ThinkingBlock):
        return len(_WORD.findall(block.thinking))
    if isinstance(block, ToolUseBlock):
        return max(1, len(orjson.dumps(block.input)) // 4)
    return 0


def _truncate(block: ContentBlock, words: int) -> ContentBlock | None:
    """The first ``words`` words of a text or thinking block; a tool call cannot be cut."""
    if words <= 0:
        return None
    if isinstance(block, TextBlock):
        return TextBlock(_first_words(block.text, words))
    if isinstance(block, ThinkingBlock):
        return ThinkingBlock(_first_words(block.thinking, words), block.signature)
    return None


def _first_words(text: str, words: int) -> str:
    end = 0
    for end_match in islice(_WORD.finditer(text), words):
        end = end_match.end()
    return text[:end]
