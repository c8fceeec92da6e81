"""What every answer to a fuzzed request must satisfy, whatever the request was.

* no 5xx, except the statuses a test explicitly asked the mock for (``allowed``);
* a non-2xx body is a well-formed error in the caller's dialect;
* a 2xx body is a well-formed answer: JSON of the right shape, or a stream that ends properly;
* no guarded secret (admin token, API keys, upstream keys and headers) in the body or headers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

Dialect = Literal["openai", "anthropic"]
Kind = Literal["chat", "count_tokens"]
PATHS: dict[tuple[Dialect, Kind], str] = {
    ("openai", "chat"): "/v1/chat/completions",
    ("anthropic", "chat"): "/v1/messages",
    ("anthropic", "count_tokens"): "/v1/messages/count_tokens",
}


@dataclass(frozen=True)
class FuzzTarget:
    """A running gateway, the caller's key and the strings no response may contain."""

    client: httpx.Client
    api_key: str
    guarded: tuple[str, ...]

    def headers(self, dialect: Dialect) -> dict[str, str]:
        """The headers an SDK of ``dialect`` sends."""
        if dialect == "anthropic":
            return {
                "x-api-key": self.api_key,
                "anthropic-version": "2023-06-01",
                "content-type": "application/json",
            }
        return {"authorization": f"Bearer {self.api_key}", "content-type": "application/json"}

    def post(
        self,
        dialect: Dialect,
        kind: Kind,
        body: bytes,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> httpx.Response:
        sent = self.headers(dialect) if headers is None else dict(headers)
        return self.client.post(PATHS[(dialect, kind)], content=body, headers=sent)

    def check(
        self,
        response: httpx.Response,
        dialect: Dialect,
        kind: Kind = "chat",
        allowed: Collection[int] = (),
    ) -> None:
        """Assert every property above for one answer."""
        status = response.status_code
        context = f"{status} {response.headers.get('content-type')}: {response.text[:600]!r}"
        assert status < 500 or status in allowed, f"unexpected server error: {context}"
        self.check_no_secret(response)
        if status >= 300:
            check_error_body(response.content, dialect, context)
        elif response.headers.get("content-type", "").startswith("text/event-stream"):
            check_stream(response.content, dialect, context)
        else:
            check_answer(response.content, dialect, kind, context)

    def check_no_secret(self, response: httpx.Response) -> None:
        text = response.content.decode("utf-8", "replace")
        heads = " ".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        for secret in self.guarded:
            assert secret not in text, f"a guarded secret appears in the body: {text[:300]!r}"
            assert secret not in heads, "a guarded secret appears in the headers"


def _load(body: bytes, context: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AssertionError(f"body is not JSON: {context}") from None


def check_error_body(body: bytes, dialect: Dialect, context: str) -> None:
    payload = _load(body, context)
    assert isinstance(payload, dict), context
    check_error_object(payload, dialect, context)


def check_error_object(payload: dict[str, Any], dialect: Dialect, context: str) -> None:
    """OpenAI: ``{"error": {"message", "type", ...}}``; Anthropic: ``{"type": "error", "error":
    {"type", "message"}}``."""
    error = payload.get("error")
    assert isinstance(error, dict), f"no error object: {context}"
    assert isinstance(error.get("message"), str) and error["message"], context
    assert isinstance(error.get("type"), str) and error["type"], context
    if dialect == "anthropic":
        assert payload.get("type") == "error", f"not an Anthropic error: {context}"
    else:
        assert "type" not in payload, f"an Anthropic-shaped error to an OpenAI caller: {context}"


def check_answer(body: bytes, dialect: Dialect, kind: Kind, context: str) -> None:
    payload = _load(body, context)
    assert isinstance(payload, dict), context
    if kind == "count_tokens":
        assert isinstance(payload.get("input_tokens"), int), context
    elif dialect == "openai":
        assert payload.get("object") == "chat.completion", context
        assert isinstance(payload.get("choices"), list) and payload["choices"], context
    else:
        assert payload.get("type") == "message", context
        assert isinstance(payload.get("content"), list), context


def sse_events(body: bytes) -> list[tuple[str | None, bytes]]:
    """``(event name, data)`` of each SSE event in a whole stream body."""
    events: list[tuple[str | None, bytes]] = []
    for raw in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        name: str | None = None
        data: list[bytes] = []
        for line in raw.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        if name is not None or data:
            events.append((name, b"\n".join(data)))
    return events


def check_stream(body: bytes, dialect: Dialect, context: str) -> None:
    """The stream ends with its terminator or with an error event in the caller's dialect."""
    events = sse_events(body)
    assert events, f"an empty stream: {context}"
    name, data = events[-1]
    if dialect == "openai":
        if data == b"[DONE]":
            return
        last = _load(data, context)
        check_error_object(last, "openai", context)
        return
    last = _load(data, context)
    if name == "error":
        check_error_object(last, "anthropic", context)
        return
    assert name == "message_stop" and last.get("type") == "message_stop", (
        f"the stream did not end with message_stop: {context}"
    )
    assert events[0][0] == "message_start", context
