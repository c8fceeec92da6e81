"""A request that may not wait for its model's full deployment is refused from its body's head,
before the full decode (issue 13: a busy 429 must cost under 0.1 ms): so a body invalid past its
model gets the busy 429 as well. The refusal is still answered in the caller's dialect with
Retry-After and recorded in the ledger with what the body's head says (model, stream, end user)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.integration.cache_support import CHAT, MESSAGES, Gateway, start_gateway
from tests.waiting import eventually

from relaygate.admission import Admitter, Ticket
from relaygate.core.context import RequestContext
from relaygate.core.types import ChatRequest
from relaygate.limits import MemoryLimiter
from relaygate.routing.catalog import ModelRoute
from relaygate.store.records import KeyRecord

Headers = Mapping[str, str]

CONFIG = """
limits:
  overload:
    enabled: false
  queue:
    max_wait_seconds: 30
models:
  - name: one
    deployments:
      - provider: mock
        name: one-mock
        max_concurrency: 1
        mock: {dialect: openai}
  - name: claude-one
    deployments:
      - provider: mock
        name: claude-one-mock
        max_concurrency: 1
        mock: {dialect: anthropic}
"""
NO_WAIT = {"x-relaygate-max-wait-ms": "0"}
HANG = [{"role": "user", "content": "mock:fault hang"}]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(tmp_path, CONFIG)
    yield gw
    await gw.client.aclose()
    await gw.services.close()


@contextlib.asynccontextmanager
async def held(gw: Gateway, path: str, body: dict[str, Any]) -> AsyncIterator[None]:
    """Keep the model's only slot taken by a hanging request while the block runs."""
    headers = gw.openai_headers() if path == CHAT else gw.anthropic_headers()
    holder = asyncio.create_task(gw.client.post(path, json=body, headers=headers))
    limiter = gw.services.admission.limiter
    assert isinstance(limiter, MemoryLimiter)
    deployment = "one-mock" if path == CHAT else "claude-one-mock"
    await eventually(lambda: limiter.held(f"d:{deployment}:conc") == 1)
    try:
        yield
    finally:
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder


async def test_openai_busy_refusal_before_the_full_decode(gateway: Gateway) -> None:
    gw = gateway
    invalid_past_the_model = {"model": "one", "messages": "not a list", "user": "alice"}
    before = await gw.client.post(
        CHAT, json=invalid_past_the_model, headers=gw.openai_headers(**NO_WAIT)
    )
    assert before.status_code == 400  # with room, the full decode still judges the body
    async with held(gw, CHAT, {"model": "one", "messages": HANG}):
        busy = await gw.client.post(
            CHAT,
            json={**invalid_past_the_model, "stream": True},
            headers=gw.openai_headers(**NO_WAIT),
        )
    assert busy.status_code == 429, busy.text
    assert busy.headers["retry-after"] == "1"
    error = busy.json()["error"]
    assert error["message"] == "relaygate is busy: retry in 1 s"
    assert error["type"] == "rate_limit_error" or error["code"] == "rate_limit_exceeded"
    [row] = await gw.ledger_rows(busy.headers["x-request-id"])
    assert (row.status, row.error_kind, row.model_requested) == (429, "rate_limited", "one")
    assert (row.end_user, row.stream, row.key_name) == ("alice", True, "default")


async def test_anthropic_busy_refusal_before_the_full_decode(gateway: Gateway) -> None:
    gw = gateway
    hang = {"model": "claude-one", "max_tokens": 8, "messages": HANG}
    async with held(gw, MESSAGES, hang):
        busy = await gw.client.post(
            MESSAGES,
            json={"model": "claude-one", "metadata": {"user_id": "bob"}},  # no max_tokens
            headers=gw.anthropic_headers(**NO_WAIT),
        )
    assert busy.status_code == 429, busy.text
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["type"] == "error"
    assert busy.json()["error"] == {
        "type": "rate_limit_error",
        "message": "relaygate is busy: retry in 1 s",
    }
    [row] = await gw.ledger_rows(busy.headers["x-request-id"])
    assert (row.status, row.model_requested, row.end_user, row.stream) == (
        429,
        "claude-one",
        "bob",
        False,
    )


async def test_a_request_that_may_wait_is_still_decoded_first(gateway: Gateway) -> None:
    gw = gateway
    async with held(gw, CHAT, {"model": "one", "messages": HANG}):
        may_wait = await gw.client.post(
            CHAT, json={"model": "one", "messages": "not a list"}, headers=gw.openai_headers()
        )
    assert may_wait.status_code == 400


async def test_the_handler_hands_the_time_since_arrival_to_the_gate(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue's ``max_wait_seconds`` bounds a lower key's time from its arrival: the handler
    hands the gate its context's elapsed time, to the check before the full decode and to
    ``admit``."""
    gw = gateway
    seen: list[tuple[str, float]] = []
    real_busy, real_admit = Admitter.refuse_busy, Admitter.admit

    def refuse_busy(
        self: Admitter, key: KeyRecord, route: ModelRoute, headers: Headers, spent: float = 0.0
    ) -> None:
        seen.append(("refuse_busy", spent))
        real_busy(self, key, route, headers, spent)

    async def admit(
        self: Admitter,
        key: KeyRecord,
        route: ModelRoute,
        req: ChatRequest,
        headers: Headers,
        spent: float = 0.0,
    ) -> Ticket:
        seen.append(("admit", spent))
        return await real_admit(self, key, route, req, headers, spent)

    monkeypatch.setattr(RequestContext, "elapsed", lambda self: 0.25)
    monkeypatch.setattr(Admitter, "refuse_busy", refuse_busy)
    monkeypatch.setattr(Admitter, "admit", admit)
    body = {"model": "one", "messages": [{"role": "user", "content": "hi"}]}
    answered = await gw.client.post(CHAT, json=body, headers=gw.openai_headers())
    assert answered.status_code == 200, answered.text
    assert seen == [("refuse_busy", 0.25), ("admit", 0.25)]
