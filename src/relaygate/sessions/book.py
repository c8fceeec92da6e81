"""The session seam the request path uses: policy per key and model, history in, turn out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from relaygate.core.events import StreamEvent
from relaygate.core.types import ChatRequest, ChatResponse, ContentBlock, Message
from relaygate.sessions.collect import AnswerCollector
from relaygate.sessions.store import SessionStore, SessionUnavailableError
from relaygate.sessions.turns import (
    SessionPolicy,
    Turn,
    answerable,
    check_session_id,
    history,
    trim,
)
from relaygate.settings.sessions import SessionPolicySettings, SessionSettings

logger = logging.getLogger("relaygate.sessions")


@dataclass(slots=True)
class SessionStats:
    """Counters for ``/metrics`` (``sessions/metrics.py``)."""

    requests: int = 0
    recorded: int = 0
    trimmed: int = 0
    failures: int = 0


class SessionBook:
    """Turns per key and session id, kept by ``store`` under the configured policies."""

    def __init__(
        self,
        store: SessionStore,
        settings: SessionSettings,
        models: Mapping[str, SessionPolicySettings] | None = None,
    ) -> None:
        self.store = store
        self._defaults = SessionPolicy(
            settings.max_turns, settings.max_tokens, settings.ttl_seconds
        )
        self._models = dict(models or {})
        self._keys = dict(settings.keys)
        self.stats = SessionStats()

    def policy(self, key_name: str, model: str) -> SessionPolicy:
        """The defaults, overridden field by field by the model's settings, then the key's."""
        policy = self._defaults
        for override in (self._models.get(model), self._keys.get(key_name)):
            if override is not None:
                policy = SessionPolicy(
                    override.max_turns or policy.max_turns,
                    policy.max_tokens if override.max_tokens is None else override.max_tokens,
                    override.ttl_seconds or policy.ttl_seconds,
                )
        return policy

    async def open(
        self, session_id: str, scope: str, policy: SessionPolicy, req: ChatRequest
    ) -> OpenSession:
        """The session's stored history (trimmed by ``policy``) for ``req``."""
        check_session_id(session_id)
        self.stats.requests += 1
        turns = trim(await self.store.load(scope, session_id), policy)
        prepended = answerable(history(turns), req.messages)
        return OpenSession(
            self.store, self.stats, scope, session_id, policy, req.messages, prepended
        )

    async def turns(self, scope: str, session_id: str) -> list[Turn]:
        check_session_id(session_id)
        return await self.store.load(scope, session_id)

    async def forget(self, scope: str, session_id: str) -> bool:
        check_session_id(session_id)
        return await self.store.delete(scope, session_id)


@dataclass(slots=True)
class OpenSession:
    """One request's session: what it asked, and how to record the answer once it succeeded."""

    store: SessionStore
    stats: SessionStats
    scope: str
    session_id: str
    policy: SessionPolicy
    asked: tuple[Message, ...]
    # The stored turns' messages, to go before the request's own (``relay.history``).
    history: tuple[Message, ...]
    collector: AnswerCollector = field(default_factory=AnswerCollector)
    answer: tuple[ContentBlock, ...] | None = None
    recorded: bool = False

    def answered(self, response: ChatResponse) -> None:
        """Keep a whole answer's content for ``record`` (``relay_whole``'s ``on_answer``)."""
        self.answer = response.content

    async def record(self, answer: tuple[ContentBlock, ...] | None) -> bool:
        """Append the asked messages and the answer as one turn; nothing without an answer.

        A store that fails now is logged, not raised: the caller's answer is already paid for.
        """
        if self.recorded or not answer or not self.asked:
            return False
        self.recorded = True
        turn = Turn.of((*self.asked, Message("assistant", answer)))
        try:
            self.stats.trimmed += await self.store.append(
                self.scope, self.session_id, turn, self.policy
            )
        except SessionUnavailableError as err:
            self.stats.failures += 1
            logger.error("session turn not recorded: %s", err.message)
            return False
        self.stats.recorded += 1
        return True

    async def observe(self, events: list[StreamEvent]) -> None:
        """Fed a stream's events before the caller gets them: records the answer as soon as
        the stream completed cleanly (a failed or cut-off stream is never recorded)."""
        self.collector.feed(events)
        if self.collector.completed:
            await self.record(self.collector.content())
