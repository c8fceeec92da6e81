"""The session store protocol both backends implement, and its one error."""

from __future__ import annotations

from typing import Protocol

from relaygate.core.errors import GatewayError
from relaygate.sessions.turns import SessionPolicy, Turn


class SessionUnavailableError(GatewayError):
    """The session backend could not be reached: the request is refused rather than relayed
    without its history (or answered and then silently not remembered)."""

    status = 503
    kind = "unavailable"


class SessionStore(Protocol):
    """Turns per (scope, session id); the scope is the owning key's id, so another key's lookups
    of the same session id never meet it. Every method is atomic per session."""

    @property
    def backend(self) -> str:
        """``memory`` or ``redis``."""
        ...

    async def load(self, scope: str, session_id: str) -> list[Turn]:
        """The stored turns, oldest first; empty when none (or expired)."""
        ...

    async def append(self, scope: str, session_id: str, turn: Turn, policy: SessionPolicy) -> int:
        """Add ``turn`` at the end, trim by ``policy``, restart the TTL; how many turns the
        trimming dropped."""
        ...

    async def delete(self, scope: str, session_id: str) -> bool:
        """Forget the session; False when there was none."""
        ...

    async def close(self) -> None: ...
