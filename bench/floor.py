"""The floor relay: the least work any Python relay must do, run beside the gateway as a yardstick.

Raw ASGI on uvicorn (uvloop, httptools) with one pooled aiohttp session. Per request it reads
the body, parses it with orjson for ``model``, checks the bearer key against a set, forwards
the body to that model's upstream and relays status, content type and body (chunk by chunk
when the upstream streams). No caching, no tricks: it is the yardstick, not a competitor.

    python -m bench.floor --port 9000 --key sk-1 --upstream bench-gpt=http://127.0.0.1:8001/v1
    python -m bench.floor --port 9000 --config floor.json   # {"keys": [...], "upstreams": {...}}

An upstream base URL ends where the OpenAI API root is (``.../v1``); the request path after
``/v1`` is appended to it, as the gateway does with a deployment's ``base_url``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_API_ROOT = "/v1"


@dataclass(slots=True)
class FloorRelay:
    """The ASGI app: keys allowed, model -> upstream base URL, one client session."""

    keys: frozenset[str]
    upstreams: dict[str, str]
    session: aiohttp.ClientSession | None = field(default=None, init=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
                self.session = aiohttp.ClientSession(
                    connector=connector, timeout=aiohttp.ClientTimeout(total=600)
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET" and scope["path"] == "/healthz":
            await _answer(send, 200, b'{"ok":true}')
            return
        body = await _read_body(receive)
        if _bearer(scope) not in self.keys:
            await _answer(send, 401, b'{"error":{"message":"invalid key"}}')
            return
        try:
            model = orjson.loads(body).get("model")
        except (orjson.JSONDecodeError, AttributeError):
            await _answer(send, 400, b'{"error":{"message":"body is not a JSON object"}}')
            return
        base = self.upstreams.get(model) if isinstance(model, str) else None
        if base is None or self.session is None:
            await _answer(send, 404, b'{"error":{"message":"unknown model"}}')
            return
        url = base + scope["path"].removeprefix(_API_ROOT)
        try:
            async with self.session.post(url, data=body, headers=_JSON_HEADERS) as upstream:
                await _relay(upstream, send)
        except aiohttp.ClientError:
            await _answer(send, 502, b'{"error":{"message":"upstream failed"}}')


_JSON_HEADERS = {"Content-Type": "application/json"}


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            return text[7:] if text[:7].lower() == "bearer " else ""
    return ""


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})


async def _relay(upstream: aiohttp.ClientResponse, send: Send) -> None:
    """Status and content type as the upstream sent them; an event stream chunk by chunk."""
    content_type = upstream.headers.get("Content-Type", "application/json")
    headers = [(b"content-type", content_type.encode("latin-1"))]
    await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
    if not content_type.startswith("text/event-stream"):
        await send({"type": "http.response.body", "body": await upstream.read()})
        return
    async for chunk in upstream.content.iter_any():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _upstream_pair(text: str) -> tuple[str, str]:
    model, sep, url = text.partition("=")
    if not sep or not model or not url.startswith("http"):
        raise argparse.ArgumentTypeError(f"expected MODEL=URL, got {text!r}")
    return model, url.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", action="append", default=[], help="an accepted bearer key")
    parser.add_argument(
        "--upstream", action="append", type=_upstream_pair, default=[], help="MODEL=BASE_URL"
    )
    parser.add_argument("--config", type=Path, help='JSON {"keys": [...], "upstreams": {...}}')
    return parser


def build_relay(args: argparse.Namespace) -> FloorRelay:
    """The app from the options (a config file adds to what the command line gave)."""
    keys = set(args.key)
    upstreams = dict(args.upstream)
    if args.config:
        config = orjson.loads(args.config.read_bytes())
        keys.update(config.get("keys", []))
        upstreams.update({m: u.rstrip("/") for m, u in config.get("upstreams", {}).items()})
    return FloorRelay(frozenset(keys), upstreams)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT."""
    import uvicorn

    args = build_parser().parse_args(argv)
    relay = build_relay(args)
    if not relay.keys or not relay.upstreams:
        print("bench.floor: give at least one --key and one --upstream", file=sys.stderr)
        return 2
    uvicorn.run(
        relay,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        # The options relaygate serves with (relaygate.cli.workers.SERVER_OPTIONS), except its
        # protocol class: issue 13 defines the floor on stock uvicorn, and relaygate's one socket
        # write per whole response (relaygate.web.protocol) is the gateway's own work.
        proxy_headers=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
