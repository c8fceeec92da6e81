"""The dashboard's login session: a stateless cookie signed with the gateway's dashboard secret.

The cookie's value is ``<session id>.<expiry, unix seconds>.<HMAC-SHA256 of both>``; nothing is
stored server-side. The secret is a file in the gateway's home (``SECRET_FILE``, mode 0600),
made once, so every worker process of ``serve --workers N`` accepts the cookie another issued,
and a restart does not log browsers out; deleting the file ends every session at the next
start. The CSRF token of a session is
an HMAC of its id under a different label, so it cannot be computed without the secret and a
stolen CSRF token does not reveal the cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

COOKIE_NAME = "relaygate_dashboard"
COOKIE_PATH = "/dashboard"
DEFAULT_LIFETIME_SECONDS = 8 * 3600
SECRET_FILE = "dashboard-secret"  # noqa: S105 (a file name, not a secret)
SECRET_BYTES = 32


def shared_secret(home: Path) -> bytes:
    """The dashboard secret in ``home``, made (atomically, readable only by its owner) when
    absent; several workers starting together all end up with the one that was written first."""
    path = home / SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) == SECRET_BYTES:
            return secret
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_bytes(SECRET_BYTES)
    temporary = home / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(fresh)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)  # fails if another worker's secret got there first
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    secret = path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"{path} is not a dashboard secret of {SECRET_BYTES} bytes: delete it")
    return secret


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    expires_at: int


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens."""

    def __init__(
        self,
        secret: bytes | None = None,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock

    def issue(self) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(secrets.token_urlsafe(18), int(self._clock()) + self.lifetime_seconds)
        payload = f"{session.session_id}.{session.expires_at}"
        return session, f"{payload}.{self._mac(b'session', payload)}"

    def verify(self, cookie_value: str | None) -> Session | None:
        """The session a cookie value carries, or None when it is malformed, forged or expired."""
        if not cookie_value or len(cookie_value) > 200:
            return None
        parts = cookie_value.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        session_id, expiry, mac = parts
        if not hmac.compare_digest(mac, self._mac(b"session", f"{session_id}.{expiry}")):
            return None
        if int(expiry) <= self._clock():
            return None
        return Session(session_id, int(expiry))

    def csrf_token(self, session: Session) -> str:
        return self._mac(b"csrf", session.session_id)

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def _mac(self, label: bytes, payload: str) -> str:
        digest = hmac.new(self._secret, label + b"\0" + payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def set_cookie_header(value: str, max_age: int, *, secure: bool) -> tuple[bytes, bytes]:
    """The ``set-cookie`` header of the session cookie (``max_age`` 0 deletes it)."""
    attributes = [
        f"{COOKIE_NAME}={value}",
        f"Path={COOKIE_PATH}",
        f"Max-Age={max_age}",
        "HttpOnly",
        "SameSite=Strict",
    ]
    if secure:
        attributes.append("Secure")
    return b"set-cookie", "; ".join(attributes).encode("latin-1")


def cookie_value(cookie_header: str | None) -> str | None:
    """The session cookie's value in a ``cookie`` request header."""
    if not cookie_header:
        return None
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE_NAME:
            return value
    return None
