"""Sessions in this process's memory: TTL per session, at most ``max_sessions`` (LRU)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from relaygate.sessions.turns import SessionPolicy, Turn, trim


@dataclass(slots=True)
class _Session:
    turns: list[Turn]
    expires_at: float


class MemorySessionStore:
    """No awaits inside a method, so each one is atomic on the event loop."""

    def __init__(self, max_sessions: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()
        self._max_sessions = max_sessions
        self._clock = clock
        self.evicted = 0

    @property
    def backend(self) -> str:
        return "memory"

    def __len__(self) -> int:
        return len(self._sessions)

    def _live(self, name: tuple[str, str]) -> _Session | None:
        session = self._sessions.get(name)
        if session is not None and session.expires_at <= self._clock():
            del self._sessions[name]
            return None
        return session

    async def load(self, scope: str, session_id: str) -> list[Turn]:
        session = self._live((scope, session_id))
        return list(session.turns) if session is not None else []

    async def append(self, scope: str, session_id: str, turn: Turn, policy: SessionPolicy) -> int:
        name = (scope, session_id)
        session = self._live(name)
        grown = [*(session.turns if session else []), turn]
        turns = trim(grown, policy)
        if not turns:
            self._sessions.pop(name, None)
            return len(grown)
        self._sessions[name] = _Session(turns, self._clock() + policy.ttl_seconds)
        self._sessions.move_to_end(name)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
            self.evicted += 1
        return len(grown) - len(turns)

    async def delete(self, scope: str, session_id: str) -> bool:
        return self._live((scope, session_id)) is not None and bool(
            self._sessions.pop((scope, session_id), None)
        )

    async def close(self) -> None:
        self._sessions.clear()
