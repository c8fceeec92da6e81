"""Server-sent events: an incremental, pure decoder and the frame encoder.

The decoder accepts bytes in whatever chunks the network delivers and yields complete frames; it
keeps at most one partial frame buffered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class SSEFrame:
    event: str | None
    data: str


def encode_frame(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame; ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class SSEDecoder:
    """Splits bytes into ``SSEFrame`` objects (WHATWG event-stream rules, no ``id``/``retry``)."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        if (
            chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
            and not (self._buffer or self._data or self._event is not None)
            and not chunk.endswith(b"\r\n\n")
        ):
            # The common chunk: exactly one one-line data frame (OpenAI sends one per chunk).
            return [SSEFrame(None, chunk[6:-2].decode("utf-8", errors="replace"))]
        buffer = self._buffer + chunk if self._buffer else chunk
        end = buffer.rfind(b"\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 1 :]
        # One pass over the complete lines, the line rules of ``_line`` inlined: a stream is
        # mostly one-line frames, and a call per line was most of this decoder's cost.
        frames: list[SSEFrame] = []
        data, event = self._data, self._event
        for line in buffer[:end].split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data or event is not None:
                    frames.append(SSEFrame(event, data[0] if len(data) == 1 else "\n".join(data)))
                    data, event = [], None
                continue
            name, _, value = line.partition(b":")
            if not name:
                continue  # a comment
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data.append(value.decode("utf-8", errors="replace"))
            elif name == b"event":
                event = value.decode("utf-8", errors="replace")
        self._data, self._event = data, event
        return frames

    def finish(self) -> list[SSEFrame]:
        """Flush a last frame that was not followed by a blank line."""
        frames: list[SSEFrame] = []
        if self._buffer:
            frame = self._line(self._buffer.rstrip(b"\r"))
            self._buffer = b""
            if frame is not None:
                frames.append(frame)
        if self._data:
            frame = self._line(b"")
            if frame is not None:
                frames.append(frame)
        return frames

    @property
    def pending(self) -> bool:
        """True while a frame has begun but not ended."""
        return bool(self._buffer or self._data or self._event is not None)

    def _line(self, line: bytes) -> SSEFrame | None:
        if not line:
            if not self._data and self._event is None:
                return None
            frame = SSEFrame(self._event, "\n".join(self._data))
            self._event = None
            self._data = []
            return frame
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        return None
