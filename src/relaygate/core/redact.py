"""Redaction of known secrets (the gateway's upstream credentials) from text leaving the gateway.

Some upstreams quote the key they were sent in their error messages. Every error derived from an
upstream answer passes through one ``Redactor`` before it reaches a caller, and so does every log
line. Only error paths and log lines pay for it: a few substring searches over short text.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from relaygate.core.errors import GatewayError

REDACTED = "[redacted]"
_REDACTED_BYTES = REDACTED.encode()
CLIPPED_MATCH = 8
"""Leading characters of a secret that end a message count as the secret: providers clip upstream
messages (500 characters) and put them last in theirs, so a key can reach the end cut short."""


class Redactor:
    """Replaces each secret, whatever its shape, with ``[redacted]``: as written, and as JSON
    (and encoders that escape ``/``) writes it."""

    __slots__ = ("_bytes", "_secrets", "_text")

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        forms: set[str] = set()
        for secret in self._secrets:
            escaped = orjson.dumps(secret).decode()[1:-1]
            forms.update((secret, escaped, escaped.replace("/", "\\/")))
        # Longest first: a secret that contains another is replaced whole.
        self._text = tuple(sorted(forms, key=len, reverse=True))
        self._bytes = tuple(form.encode() for form in self._text)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        """``value`` without any secret (a log line, an encoded error body)."""
        for secret in self._text:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def raw(self, data: bytes) -> bytes:
        """``data`` (relayed upstream bytes) without any secret."""
        for secret in self._bytes:
            if secret in data:
                data = data.replace(secret, _REDACTED_BYTES)
        return data

    def message(self, value: str) -> str:
        """An error message without any secret, even one it ends with cut short."""
        value = self.text(value)
        for secret in self._secrets:
            value = _without_clipped(value, secret)
        return value

    def error(self, err: GatewayError) -> GatewayError:
        """``err`` with its message redacted, in place: whatever renders or logs the error
        afterwards sees the redacted message."""
        if self._secrets:
            cleaned = self.message(err.message)
            if cleaned != err.message:
                err.message = cleaned
                err.args = (cleaned,)
        return err


def _without_clipped(value: str, secret: str) -> str:
    start = value.rfind(secret[:CLIPPED_MATCH], max(0, len(value) - len(secret)))
    if start >= 0 and len(secret) > CLIPPED_MATCH and secret.startswith(value[start:]):
        return value[:start] + REDACTED
    return value
