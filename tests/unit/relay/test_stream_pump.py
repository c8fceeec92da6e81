"""StreamPump relaying a same-dialect stream: what the caller gets when the upstream breaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from relaygate.core.context import RequestContext
from relaygate.core.events import StreamEvent
from relaygate.core.redact import Redactor
from relaygate.core.sse import SSEDecoder
from relaygate.core.types import ChatRequest, Message, TextBlock
from relaygate.dialects.openai import OpenAIDialect
from relaygate.providers.openai import OpenAIProvider
from relaygate.relay.stream import OpenedStream, StreamPump


def chunk(text: str) -> bytes:
    payload = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Response:
    closed = False

    def close(self) -> None:
        self.closed = True


class Caller:
    """The ASGI side: records what was sent; never disconnects."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def wait_disconnect(self) -> None:
        await asyncio.Event().wait()

    def caller_watch(self) -> Any:
        return None  # no server watch: the pump's watcher task waits for the disconnect

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def pump(
    chunks: list[bytes],
    redactor: Redactor | None = None,
    caller: Caller | None = None,
    on_events: Any = None,
    include_usage: bool = True,
    upstream_hangs: bool = False,
) -> tuple[RequestContext, bytes, Response]:
    provider = OpenAIProvider()

    async def upstream() -> AsyncIterator[bytes]:
        for part in chunks[1:]:
            yield part
        if upstream_hangs:
            await asyncio.Event().wait()

    decoder, parser = SSEDecoder(), provider.stream_parser()
    frames = decoder.feed(chunks[0])
    events = [e for f in frames for e in parser.feed(f)]
    response = Response()
    opened = OpenedStream(
        deployment=SimpleNamespace(wire="openai"),  # type: ignore[arg-type]
        response=response,  # type: ignore[arg-type]
        chunks=upstream(),
        first_chunk=chunks[0],
        decoder=decoder,
        parser=parser,
        first_events=events,
        first_frames=frames,
    )
    req = ChatRequest(
        dialect="openai",
        model="m",
        messages=(Message("user", (TextBlock("hi"),)),),
        stream=True,
        include_usage=include_usage,
    )
    ctx = RequestContext("req_1", "openai.chat", "openai")
    caller = caller or Caller()
    redactor = redactor or Redactor([])
    relay = StreamPump(
        ctx,
        req,
        OpenAIDialect(),
        opened,
        caller,  # type: ignore[arg-type]
        caller.send,  # type: ignore[arg-type]
        redactor,
        on_events=on_events,
    )
    await relay.run([])
    return ctx, caller.body(), response


async def test_a_malformed_frame_ends_the_relay_with_one_error_chunk() -> None:
    ctx, body, response = await pump([chunk("one "), b"data: {not json\n\n", chunk("after")])
    assert b"one " in body
    assert body.count(b'"error"') == 1
    assert b"after" not in body
    assert ctx.outcome == "partial" and response.closed


async def test_a_stream_cut_short_gets_an_error_chunk_not_a_quiet_end() -> None:
    ctx, body, _ = await pump([chunk("one "), chunk("two")])
    assert body.endswith(b"\n\n") and b'"error"' in body
    assert b"[DONE]" not in body
    assert ctx.outcome == "partial"


class LeavingCaller(Caller):
    """Goes away once the first body chunk has reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.got_body = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await super().send(message)
        if message["type"] == "http.response.body":
            self.got_body.set()

    async def wait_disconnect(self) -> None:
        await self.got_body.wait()


async def test_a_caller_that_leaves_stops_the_relay_and_closes_the_upstream() -> None:
    caller = LeavingCaller()
    ctx, body, response = await pump([chunk("one ")], caller=caller, upstream_hangs=True)
    assert ctx.outcome == "client_closed" and response.closed
    assert body == chunk("one ")
    assert caller.sent[-1].get("more_body")  # no end of the body: nobody is there to get it


class WatchedLeavingCaller(Caller):
    """Goes away (if ``leaves``) once the pump watches for it, told through the server's
    ``CallerWatch`` (as ``web.protocol.HttpProtocol`` does on the connection's loss)."""

    def __init__(self, leaves: bool = True) -> None:
        super().__init__()
        self.leaves = leaves
        self.watched: list[bool] = []

    def caller_watch(self) -> Any:
        return self

    def watch_caller(self, on_lost: Any) -> None:
        self.watched.append(on_lost is not None)
        if on_lost is not None and self.leaves:
            asyncio.get_running_loop().call_soon(on_lost)  # the connection's loss

    async def wait_disconnect(self) -> None:
        raise AssertionError("a watched caller needs no task waiting for the disconnect")


async def test_a_caller_leaving_through_the_servers_watch_stops_the_relay_without_a_task() -> None:
    caller = WatchedLeavingCaller()
    ctx, _, response = await pump([chunk("one ")], caller=caller, upstream_hangs=True)
    assert ctx.outcome == "client_closed" and response.closed
    assert caller.watched == [True, False]  # watched while pumping, then let go
    assert caller.sent[-1].get("more_body")


async def test_a_stream_that_ends_lets_the_servers_watch_go() -> None:
    caller = WatchedLeavingCaller(leaves=False)
    ctx, body, _ = await pump([chunk("one "), chunk("two"), b"data: [DONE]\n\n"], caller=caller)
    assert ctx.outcome != "client_closed" and caller.watched == [True, False]
    assert body.endswith(b"data: [DONE]\n\n")


async def test_a_relay_cancelled_from_outside_stays_cancelled() -> None:
    caller = Caller()
    relay = asyncio.ensure_future(pump([chunk("one ")], caller=caller, upstream_hangs=True))
    while not caller.sent[1:]:
        await asyncio.sleep(0)
    relay.cancel()
    with pytest.raises(asyncio.CancelledError):
        await relay
    assert relay.cancelled()


async def test_a_caller_leaving_as_the_relay_is_cancelled_from_outside_stays_cancelled() -> None:
    caller = LeavingCaller()
    relay = asyncio.ensure_future(pump([chunk("one ")], caller=caller, upstream_hangs=True))
    await caller.got_body.wait()
    relay.cancel()  # before the watcher (ready to run) cancels it too
    with pytest.raises(asyncio.CancelledError):
        await relay
    assert relay.cancelled()


KEY = "echoed-upstream-credential-Qx81vLm0"


async def test_a_relayed_error_event_split_inside_the_key_reaches_the_caller_redacted() -> None:
    error = {"error": {"message": f"bad key: Bearer {KEY}", "type": "server_error"}}
    frame = b"data: " + orjson.dumps(error) + b"\n\n"
    cut = frame.index(b"credential")
    chunks = [chunk("one "), frame[:cut], frame[cut:]]
    ctx, body, _ = await pump(chunks, Redactor([KEY]))
    assert KEY.encode() not in body and b"credential" not in body
    assert b"bad key: Bearer [redacted]" in body
    assert body.count(b'"error"') == 1 and ctx.outcome == "partial"


async def test_frames_split_across_chunks_are_relayed_whole_and_in_order() -> None:
    frames = [chunk("one "), chunk("two "), chunk("three")]
    stream = b"".join(frames)
    chunks = [stream[:10], stream[10:70], stream[70:75], stream[75:]]
    _, body, _ = await pump([*chunks, b"data: [DONE]\n\n"])
    assert body.startswith(stream)
    assert body.endswith(b"data: [DONE]\n\n") and b'"error"' not in body


def usage_chunk(spaced: bool) -> bytes:
    payload = {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    data = json.dumps(payload) if spaced else orjson.dumps(payload).decode()
    return b"data: " + data.encode() + b"\n\n"


def spaced_chunk(text: str) -> bytes:
    payload = orjson.loads(chunk(text)[len(b"data: ") :])
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


@pytest.mark.parametrize("spaced", [False, True])
async def test_the_usage_chunk_a_caller_did_not_ask_for_is_hidden(spaced: bool) -> None:
    content = [chunk("one "), spaced_chunk("two"), chunk("")]
    finish = b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    upstream = [*content, finish, usage_chunk(spaced), b"data: [DONE]\n\n"]
    ctx, body, _ = await pump(upstream, include_usage=False)
    assert body == b"".join([*content, finish, b"data: [DONE]\n\n"])
    assert ctx.usage is not None and ctx.usage.output_tokens == 2


async def test_chunks_without_a_usage_chunk_are_relayed_as_they_came() -> None:
    upstream = [chunk("one ") + chunk("two"), chunk("three"), b"data: [DONE]\n\n"]
    _, body, _ = await pump(upstream, include_usage=False)
    assert body == b"".join(upstream)


async def test_on_events_sees_the_end_of_the_answer_before_the_caller_does() -> None:
    finish = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    caller = Caller()
    seen: list[tuple[str, bool]] = []

    async def on_events(events: list[StreamEvent]) -> None:
        for event in events:
            seen.append((type(event).__name__, b"[DONE]" in caller.body()))

    chunks = [chunk("one "), b"data: " + orjson.dumps(finish) + b"\n\n", b"data: [DONE]\n\n"]
    ctx, body, _ = await pump(chunks, caller=caller, on_events=on_events)
    assert ctx.outcome == "ok" and b"[DONE]" in body
    assert ("MessageStop", False) in seen  # seen while [DONE] had not yet gone out
