"""Cache hits decoded once: the stored answer, and its body per dialect, by the stored bytes.

A hit is mostly bookkeeping once the upstream hop is gone, and decoding the stored entry and
encoding the answer again for the caller were a tenth of it. The same entry is usually hit again
and again (that is what a cache is for), so both are kept here, keyed by the stored bytes
themselves: the in-process backend hands out the same ``bytes`` object every time, whose hash
Python keeps, and another backend's copy hashes once per lookup, far cheaper than a decode. An
entry that changed in the backend is other bytes, so nothing here can go stale. Bounded by the
bytes it holds (least recently used first out).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from relaygate.cache import decode_entry
from relaygate.core.types import ChatResponse
from relaygate.dialects.base import Dialect

MAX_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class _Replay:
    answer: ChatResponse
    bodies: dict[str, bytes] = field(default_factory=dict)
    size: int = 0


class Replays:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._by_value: OrderedDict[bytes, _Replay] = OrderedDict()

    def answer(self, value: bytes) -> ChatResponse | None:
        """The answer stored as ``value``; None when it does not decode (a corrupt entry)."""
        replay = self._get(value)
        return replay.answer if replay is not None else None

    def body(self, value: bytes, dialect: Dialect) -> bytes:
        """``dialect``'s whole response body for the answer stored as ``value`` (which must have
        decoded: ``answer`` said so)."""
        replay = self._get(value)
        if replay is None:
            raise ValueError("not a decodable cache entry")
        body = replay.bodies.get(dialect.name)
        if body is None:
            body = replay.bodies[dialect.name] = dialect.encode_response(replay.answer)
            self._grow(replay, len(body))
        return body

    def _get(self, value: bytes) -> _Replay | None:
        replay = self._by_value.get(value)
        if replay is not None:
            self._by_value.move_to_end(value)
            return replay
        answer = decode_entry(value)
        if answer is None:
            return None
        replay = self._by_value[value] = _Replay(answer)
        self._grow(replay, len(value))
        return replay

    def _grow(self, replay: _Replay, size: int) -> None:
        replay.size += size
        self._bytes += size
        while self._bytes > self._max_bytes and len(self._by_value) > 1:
            _, oldest = self._by_value.popitem(last=False)
            self._bytes -= oldest.size
