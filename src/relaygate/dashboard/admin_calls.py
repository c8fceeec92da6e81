"""The dashboard reads and changes everything through the admin API's own handlers, in process.

A page builds the admin request it needs (method, path, query, JSON body), ``serve_admin`` answers
it exactly as it answers ``/admin`` over HTTP (validation, store calls, cache invalidation,
errors), and the page renders the JSON. So the dashboard can do what the admin API can, and holds
no business logic of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from relaygate.admin import serve_admin
from relaygate.services import Services
from relaygate.web.request import Message, Request


@dataclass(frozen=True, slots=True)
class AdminAnswer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        """The admin API's error message (empty when the call succeeded)."""
        if self.ok:
            return ""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("message", ""))
        return f"HTTP {self.status}"


async def call_admin(
    services: Services,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> AdminAnswer:
    """Answer ``method path?query`` with ``body`` through the admin API's handlers."""
    payload = orjson.dumps(body) if body is not None else b""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": urlencode({k: v for k, v in (query or {}).items() if v}).encode(),
        "headers": [(b"content-length", str(len(payload)).encode())],
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    status = 500
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await serve_admin(services, Request(scope, receive), send)
    raw = b"".join(chunks)
    return AdminAnswer(status, orjson.loads(raw) if raw else None)


def key_path(name: str, suffix: str = "") -> str:
    """``/admin/keys/{name}{suffix}`` (an ASGI path is already percent-decoded)."""
    return f"/admin/keys/{name}{suffix}"
