"""Conversation sessions: stored turns per key and session id, prepended to later requests.

``SessionBook`` is what the request path uses; ``SessionStore`` is the backend protocol with a
memory and a Redis implementation (one contract suite over both, tests/contract/).
"""

from relaygate.sessions.book import OpenSession, SessionBook
from relaygate.sessions.collect import AnswerCollector
from relaygate.sessions.memory import MemorySessionStore
from relaygate.sessions.redis import RedisSessionStore
from relaygate.sessions.store import SessionStore, SessionUnavailableError
from relaygate.sessions.turns import (
    MAX_SESSION_ID_CHARS,
    SESSION_HEADER,
    SessionPolicy,
    Turn,
    check_session_id,
    history,
    trim,
)

__all__ = [
    "MAX_SESSION_ID_CHARS",
    "SESSION_HEADER",
    "AnswerCollector",
    "MemorySessionStore",
    "OpenSession",
    "RedisSessionStore",
    "SessionBook",
    "SessionPolicy",
    "SessionStore",
    "SessionUnavailableError",
    "Turn",
    "check_session_id",
    "history",
    "trim",
]
