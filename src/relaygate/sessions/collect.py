"""The answer a stream carried, rebuilt from its neutral events, to be stored as a turn."""

from __future__ import annotations

import orjson

from relaygate.core.events import (
    BlockStart,
    MessageStop,
    SignatureDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from relaygate.core.types import (
    ContentBlock,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
)


class AnswerCollector:
    """Fed every event of one stream; ``content`` once it ended with ``MessageStop``."""

    def __init__(self) -> None:
        self._starts: dict[int, BlockStart] = {}
        self._parts: dict[int, list[str]] = {}
        self._signatures: dict[int, str] = {}
        self.completed = False
        self.failed = False

    def feed(self, events: list[StreamEvent]) -> None:
        for event in events:
            if isinstance(event, BlockStart):
                self._starts[event.index] = event
                self._parts[event.index] = []
            elif isinstance(event, TextDelta):
                self._parts.setdefault(event.index, []).append(event.text)
            elif isinstance(event, ThinkingDelta):
                self._parts.setdefault(event.index, []).append(event.thinking)
            elif isinstance(event, ToolArgsDelta):
                self._parts.setdefault(event.index, []).append(event.partial_json)
            elif isinstance(event, SignatureDelta):
                self._signatures[event.index] = event.signature
            elif isinstance(event, MessageStop):
                self.completed = True
            elif isinstance(event, StreamError):
                self.failed = True

    def content(self) -> tuple[ContentBlock, ...] | None:
        """The answer's blocks, or None when the stream did not complete cleanly."""
        if not self.completed or self.failed:
            return None
        blocks: list[ContentBlock] = []
        for index in sorted(self._starts):
            block = self._block(self._starts[index].block, "".join(self._parts[index]), index)
            if block is None:
                return None
            blocks.append(block)
        return tuple(blocks)

    def _block(
        self,
        start: TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock,
        text: str,
        index: int,
    ) -> ContentBlock | None:
        if isinstance(start, TextBlock):
            return TextBlock(start.text + text)
        if isinstance(start, ThinkingBlock):
            signature = self._signatures.get(index, start.signature)
            return ThinkingBlock(start.thinking + text, signature)
        if isinstance(start, ToolUseBlock):
            try:
                args = orjson.loads(text) if text.strip() else start.input
            except orjson.JSONDecodeError:
                return None
            return ToolUseBlock(start.id, start.name, args if isinstance(args, dict) else {})
        return start
