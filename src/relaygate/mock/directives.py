"""Prompt directives: ``mock:tool NAME {json}``, ``mock:words N``, ``mock:fault KIND``,
``mock:recall`` (answer with every user message's text, so a test sees the whole history).

Directives are read from the text of the last user message, so any client (an SDK, Claude Code, a
curl line) can ask the mock for a tool call, a long answer or a failure without special headers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, cast

import orjson

from relaygate.core.errors import InvalidRequestError
from relaygate.core.types import ChatRequest, TextBlock, ToolResultBlock

MAX_WORDS = 65_536
MAX_TOOL_INPUT_DEPTH = 64
_DIRECTIVE = re.compile(r"mock:(tool|words|fault|recall)\b[ \t]*(\S*)")
_DECODER = json.JSONDecoder()


@dataclass(slots=True, frozen=True)
class Directives:
    """What the last user message asked of the mock; ``None`` fields were not asked."""

    tool: str | None = None
    tool_input: dict[str, Any] | None = None
    words: int | None = None
    fault: str | None = None
    recall: bool = False


NO_DIRECTIVES = Directives()


@dataclass(slots=True, frozen=True)
class UserTurn:
    """The last user message: its own text and the text of any tool results it carries."""

    text: str
    tool_result: str | None


def last_user_turn(req: ChatRequest) -> UserTurn:
    """The text (and tool-result text) of the last ``user`` message; empty when there is none."""
    for message in reversed(req.messages):
        if message.role != "user":
            continue
        texts: list[str] = []
        results: list[str] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolResultBlock):
                results.extend(b.text for b in block.content if isinstance(b, TextBlock))
        has_result = any(isinstance(b, ToolResultBlock) for b in message.content)
        return UserTurn("\n".join(texts), "\n".join(results) if has_result else None)
    return UserTurn("", None)


def parse_directives(text: str) -> Directives:
    """Every directive in ``text``; the first of each kind wins."""
    if "mock:" not in text:
        return NO_DIRECTIVES
    tool: str | None = None
    tool_input: dict[str, Any] | None = None
    words: int | None = None
    fault: str | None = None
    recall = False
    for match in _DIRECTIVE.finditer(text):
        name, arg = match.group(1), match.group(2)
        if name == "tool" and tool is None and arg:
            tool = _leading_name(arg)
            tool_input = _tool_input(text, match.start(2) + len(tool))
        elif name == "words" and words is None:
            words = _word_count(arg)
        elif name == "fault" and fault is None and arg:
            fault = arg
        elif name == "recall":
            recall = True
    return Directives(tool, tool_input, words, fault, recall)


def _leading_name(arg: str) -> str:
    brace = arg.find("{")
    return arg[:brace] if brace > 0 else arg


def _tool_input(text: str, start: int) -> dict[str, Any]:
    rest = text[start:].lstrip(" \t")
    if not rest.startswith("{"):
        return {}
    try:
        value, _ = _DECODER.raw_decode(rest)
    except json.JSONDecodeError as exc:
        raise _bad_tool_input(f"is not valid JSON ({exc.msg})") from exc
    except RecursionError:
        raise _bad_tool_input(f"is nested deeper than {MAX_TOOL_INPUT_DEPTH} levels") from None
    # Python's decoder takes what the answer's encoder refuses (lone surrogates, integers past
    # 64 bits, any depth): refuse it here, or the mock fails while answering.
    if _deeper_than(value, MAX_TOOL_INPUT_DEPTH):
        raise _bad_tool_input(f"is nested deeper than {MAX_TOOL_INPUT_DEPTH} levels")
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise _bad_tool_input(f"cannot be sent back as JSON ({exc})") from None
    return cast(dict[str, Any], value)  # decoding from "{" always yields an object


def _bad_tool_input(problem: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"messages: the mock:tool directive's input {problem}", param="messages"
    )


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _word_count(arg: str) -> int:
    if not arg.isdigit():
        raise InvalidRequestError(
            f"messages: mock:words needs a whole number, got '{arg[:20]}'", param="messages"
        )
    return min(int(arg), MAX_WORDS)
