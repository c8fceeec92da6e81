"""Webhook delivery: retries with back-off, failures and full queues logged and counted, chat
services' in-body refusals treated as failures; nothing blocks the caller of ``notify``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from tests.waiting import eventually

from relaygate.alerts import Finding, Notification
from relaygate.alerts.delivery import WebhookDispatcher
from relaygate.settings.alerts import WebhookFormat, WebhookSettings

NOW = datetime(2031, 5, 6, tzinfo=UTC)


def notification(subject: str = "dep#0") -> Notification:
    finding = Finding("breaker_open", subject, "open for 61 s", 61.0, 60.0, "critical")
    return Notification("firing", finding, NOW, NOW)


class Receiver:
    """Answers each post with the next planned (status, JSON body); the last one repeats."""

    def __init__(self, plan: list[tuple[int, dict[str, Any]]]) -> None:
        self.plan = plan
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        status, body = self.plan[min(len(self.bodies), len(self.plan)) - 1]
        return web.json_response(body, status=status)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, Receiver]]]:
    receivers: dict[str, Receiver] = {}

    async def route(request: web.Request) -> web.Response:
        return await receivers[request.match_info["name"]].handle(request)

    app = web.Application()
    app.router.add_post("/{name}", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", receivers
    await runner.cleanup()


def hook(url: str, fmt: WebhookFormat = "json", attempts: int = 3) -> WebhookSettings:
    return WebhookSettings(url=url, format=fmt, attempts=attempts, backoff_seconds=0.01)


async def test_a_500_is_retried_until_delivered(
    server: tuple[str, dict[str, Receiver]],
) -> None:
    base, receivers = server
    receivers["flaky"] = Receiver([(500, {}), (503, {}), (200, {})])
    dispatcher = WebhookDispatcher([hook(f"{base}/flaky")], queue_size=10)
    dispatcher.start()
    dispatcher.notify(notification())
    await eventually(lambda: dispatcher.counts[("0-json", "sent")] == 1)
    await dispatcher.stop()
    assert len(receivers["flaky"].bodies) == 3
    assert dispatcher.counts[("0-json", "retried")] == 2
    assert receivers["flaky"].bodies[0]["rule"] == "breaker_open"


async def test_a_webhook_that_keeps_failing_is_logged_and_counted(
    server: tuple[str, dict[str, Receiver]], caplog: pytest.LogCaptureFixture
) -> None:
    base, receivers = server
    # DingTalk answers 200 with an error code when a message is refused.
    receivers["ding"] = Receiver([(200, {"errcode": 310000, "errmsg": "keywords not in content"})])
    receivers["ok"] = Receiver([(200, {"errcode": 0, "errmsg": "ok"})])
    dispatcher = WebhookDispatcher(
        [hook(f"{base}/ding", "dingtalk", attempts=2), hook(f"{base}/ok", "wecom")], queue_size=10
    )
    dispatcher.start()
    with caplog.at_level(logging.ERROR, logger="relaygate.alerts"):
        dispatcher.notify(notification())
        await eventually(lambda: dispatcher.counts[("0-dingtalk", "failed")] == 1)
        await eventually(lambda: dispatcher.counts[("1-wecom", "sent")] == 1)
    await dispatcher.stop()
    assert len(receivers["ding"].bodies) == 2
    assert receivers["ok"].bodies[0]["msgtype"] == "text"
    assert any("310000" in r.getMessage() for r in caplog.records)


async def test_an_unreachable_webhook_fails_without_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = WebhookDispatcher([hook("http://127.0.0.1:9/x", attempts=2)], queue_size=2)
    dispatcher.start()
    with caplog.at_level(logging.ERROR, logger="relaygate.alerts"):
        for i in range(5):
            dispatcher.notify(notification(f"dep#{i}"))  # returns at once, queue or not
        assert dispatcher.counts[("0-json", "dropped")] >= 2
        await eventually(lambda: dispatcher.counts[("0-json", "failed")] >= 1)
    await dispatcher.stop()
    assert any("queue full" in r.getMessage() for r in caplog.records)
