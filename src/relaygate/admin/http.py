"""JSON in and out for the admin API, and its error shape.

Every error is ``{"error": {"type": ..., "message": ..., "param": ...}}``; ``message`` names the
field at fault and ``param`` holds its path.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError

from relaygate.core.errors import clip
from relaygate.web.request import Request, Send
from relaygate.web.responses import send_json

MAX_ADMIN_BODY_BYTES = 1024 * 1024
M = TypeVar("M", bound=BaseModel)
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): ")


class AdminError(Exception):
    """An admin API failure with its HTTP status."""

    def __init__(self, status: int, kind: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param

    @classmethod
    def bad_request(cls, message: str, param: str | None = None) -> AdminError:
        """A 400; ``param`` defaults to the ``field:`` the message starts with."""
        if param is None:
            match = _FIELD_PREFIX.match(message)
            param = match.group(1) if match else None
        return cls(400, "invalid_request", message, param)

    @classmethod
    def not_found(cls, message: str, param: str | None = None) -> AdminError:
        return cls(404, "not_found", message, param)


async def send_ok(send: Send, payload: Any, status: int = 200) -> None:
    await send_json(send, status, orjson.dumps(payload))


async def send_admin_error(send: Send, err: AdminError) -> None:
    body = {"error": {"type": err.kind, "message": err.message, "param": err.param}}
    headers = [(b"www-authenticate", b"Bearer")] if err.status == 401 else None
    await send_json(send, err.status, orjson.dumps(body), headers)


async def read_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying what is wrong with it."""
    body = await request.body(MAX_ADMIN_BODY_BYTES)
    if not body.strip():
        raise AdminError.bad_request("body: expected a JSON object, got an empty body", "body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AdminError.bad_request(f"body: invalid JSON ({exc})", "body") from None
    if not isinstance(data, dict):
        raise AdminError.bad_request(
            f"body: expected a JSON object, got {type(data).__name__}", "body"
        )
    return data


def parse_payload(model: type[M], data: dict[str, Any]) -> M:
    """``data`` validated by ``model``; every problem is named by its field path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> AdminError:
    problems = []
    first: str | None = None
    for error in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        loc = clip(loc.lstrip(".") or "body")
        first = first or loc
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{loc}: {message}")
    return AdminError.bad_request("; ".join(problems), first)


def query_params(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query string as a dict (last value wins); unknown names are a 400."""
    try:
        pairs = parse_qsl(request.query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        raise AdminError.bad_request("query: cannot parse the query string", "query") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            shown = clip(name)
            raise AdminError.bad_request(
                f"{shown}: unknown query parameter (known: {known})", shown
            )
        params[name] = value
    return params
