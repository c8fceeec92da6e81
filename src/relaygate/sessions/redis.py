"""Sessions in Redis: one list per session, appended and trimmed by one Lua script.

The script makes append + trim + TTL one atomic step, so two requests of one session finishing at
the same moment (in one process or in several) both keep their turn. Expiry is Redis's own.
"""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relaygate.core.redis_client import bounded_client
from relaygate.sessions.codec import decode_turn, encode_turn
from relaygate.sessions.store import SessionUnavailableError
from relaygate.sessions.turns import SessionPolicy, Turn

DEFAULT_PREFIX = "rg:sess:"


def _script(name: str) -> str:
    return resources.files("relaygate.sessions").joinpath("lua", name).read_text("utf-8")


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._client = client
        self._prefix = prefix
        self._append = client.register_script(_script("append.lua"))

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 1.0, prefix: str = DEFAULT_PREFIX
    ) -> RedisSessionStore:
        return cls(bounded_client(url, timeout=timeout), prefix=prefix)

    @property
    def backend(self) -> str:
        return "redis"

    def _key(self, scope: str, session_id: str) -> str:
        # Length-prefixed scope: no session id can make two (scope, id) pairs share a key.
        return f"{self._prefix}{len(scope)}:{scope}:{session_id}"

    async def load(self, scope: str, session_id: str) -> list[Turn]:
        try:
            entries = await self._client.lrange(self._key(scope, session_id), 0, -1)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        decoded = (decode_turn(e if isinstance(e, bytes) else e.encode()) for e in entries)
        return [turn for turn in decoded if turn is not None]

    async def append(self, scope: str, session_id: str, turn: Turn, policy: SessionPolicy) -> int:
        args: list[bytes | int] = [
            encode_turn(turn),
            policy.max_turns,
            policy.max_tokens,
            max(1, round(policy.ttl_seconds * 1000)),
        ]
        try:
            dropped = await self._append(keys=[self._key(scope, session_id)], args=args)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return int(dropped)

    async def delete(self, scope: str, session_id: str) -> bool:
        try:
            return bool(await self._client.delete(self._key(scope, session_id)))
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()


def _unavailable(exc: RedisError) -> SessionUnavailableError:
    return SessionUnavailableError(
        f"The session store (Redis) is unavailable: {type(exc).__name__}"
    )
