"""Sessions in this process's memory: TTL per session, at most ``max_sessions`` sessions and
``max_bytes`` of stored turns (by the token estimate, 4 bytes a token); the least recently written
session goes first."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from relaygate.core.estimate import CHARS_PER_TOKEN
from relaygate.sessions.turns import SessionPolicy, Turn, trim


@dataclass(slots=True)
class _Session:
    turns: list[Turn]
    expires_at: float
    size: int


class MemorySessionStore:
    """No awaits inside a method, so each one is atomic on the event loop."""

    def __init__(
        self,
        max_sessions: int = 10_000,
        max_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()
        self._max_sessions = max_sessions
        self._max_bytes = max_bytes
        self._clock = clock
        self.evicted = 0
        self.bytes_held = 0

    @property
    def backend(self) -> str:
        return "memory"

    def __len__(self) -> int:
        return len(self._sessions)

    def _live(self, name: tuple[str, str]) -> _Session | None:
        session = self._sessions.get(name)
        if session is not None and session.expires_at <= self._clock():
            self._drop(name)
            return None
        return session

    def _drop(self, name: tuple[str, str]) -> bool:
        session = self._sessions.pop(name, None)
        if session is None:
            return False
        self.bytes_held -= session.size
        return True

    async def load(self, scope: str, session_id: str) -> list[Turn]:
        session = self._live((scope, session_id))
        return list(session.turns) if session is not None else []

    async def append(self, scope: str, session_id: str, turn: Turn, policy: SessionPolicy) -> int:
        name = (scope, session_id)
        session = self._live(name)
        grown = [*(session.turns if session else []), turn]
        turns = trim(grown, policy)
        self._drop(name)
        if turns:
            size = sum(t.tokens for t in turns) * CHARS_PER_TOKEN
            self._sessions[name] = _Session(turns, self._clock() + policy.ttl_seconds, size)
            self.bytes_held += size
            while len(self._sessions) > self._max_sessions or (
                self.bytes_held > self._max_bytes and len(self._sessions) > 1
            ):
                self._drop(next(iter(self._sessions)))
                self.evicted += 1
        return len(grown) - len(turns)

    async def delete(self, scope: str, session_id: str) -> bool:
        return self._live((scope, session_id)) is not None and self._drop((scope, session_id))

    async def close(self) -> None:
        self._sessions.clear()
        self.bytes_held = 0
