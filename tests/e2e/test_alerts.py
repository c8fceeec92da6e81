"""Alerts through the real server: the mock is driven slow and failing, and a local webhook
receiver gets the firing and the resolved notification in every format, a flaky receiver after
retries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from relaygate.settings.defaults import EMBEDDED_DEFAULTS
from tests.e2e.server import Gateway, start_gateway, stop
from tests.e2e.webhook_receiver import WebhookReceiver
from tests.waiting import wait_until

FORMATS = ("json", "slack", "feishu", "dingtalk", "wecom")
WINDOW_SECONDS = 2


def write_config(home: Path, receiver: WebhookReceiver) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    hooks: list[dict[str, Any]] = [
        {"url": receiver.url(f"/hook/{fmt}"), "format": fmt} for fmt in FORMATS
    ]
    hooks.append({"url": receiver.url("/flaky/flaky"), "format": "json", "backoff_seconds": 0.05})
    window = {"window_seconds": WINDOW_SECONDS, "min_requests": 3}
    config = {
        # No shedding on event-loop lag: on a loaded machine busy 429s would blur the rates.
        "limits": {"overload": {"enabled": False}},
        "models": [
            *EMBEDDED_DEFAULTS["models"],
            {
                "name": "mock-breaker",
                "deployments": [
                    {
                        "provider": "mock",
                        "name": "mock-breaker-dep",
                        "mock": {"dialect": "openai"},
                        "breaker": {"consecutive_failures": 2, "cooldown_seconds": 1.5},
                    }
                ],
            },
            {
                "name": "mock-slow",
                "deployments": [
                    {"provider": "mock", "mock": {"dialect": "openai", "latency_ms": 250}}
                ],
            },
        ],
        "alerts": {
            "evaluate_seconds": 0.2,
            "rules": {
                "latency": {"threshold_ms": 100, **window},
                "errors": {"threshold": 0.2, **window},
                "breaker": {"open_seconds": 0.5},
            },
            "webhooks": hooks,
        },
    }
    path = home / "relaygate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(fail_first=2) as hooks:
        yield hooks


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver
) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("alerts-home")
    gw = start_gateway(home, write_config(home, receiver))
    yield gw
    stop(gw.process)


def send(gw: Gateway, model: str, text: str, count: int) -> list[int]:
    headers = {"authorization": f"Bearer {gw.api_key}"}
    body = {"model": model, "messages": [{"role": "user", "content": text}]}

    def one(_: int) -> int:
        url = f"{gw.base_url}/v1/chat/completions"
        return httpx.post(url, json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def text_of(fmt: str, body: dict[str, Any]) -> str:
    """The human text of a webhook body in ``fmt`` (checking the format's shape)."""
    if fmt == "json":
        assert body["source"] == "relaygate" and body["status"] in ("firing", "resolved")
        return f"{body['status']} {body['rule']} {body['text']}"
    if fmt == "slack":
        return str(body["text"])
    if fmt == "feishu":
        assert body["msg_type"] == "text"
        return str(body["content"]["text"])
    assert body["msgtype"] == "text"  # dingtalk, wecom
    return str(body["text"]["content"])


def statuses(receiver: WebhookReceiver, name: str, fmt: str, rule: str) -> list[str]:
    texts = [text_of(fmt, body) for body in receiver.received(name)]
    return [
        "resolved" if ("RESOLVED" in t or t.startswith("resolved")) else "firing"
        for t in texts
        if rule in t
    ]


def wait_fired_and_resolved(receiver: WebhookReceiver, rule: str) -> None:
    """``rule`` (or ``rule [subject``) fired and then resolved, once each, in every format."""
    for fmt in FORMATS:
        wait_until(
            lambda fmt=fmt: statuses(receiver, fmt, fmt, rule) == ["firing", "resolved"],
            timeout=20,
            what=f"{rule} firing then resolved in {fmt}: {receiver.received(fmt)}",
        )


def test_slow_answers_fire_the_latency_alert_then_resolve(
    gateway: Gateway, receiver: WebhookReceiver
) -> None:
    assert send(gateway, "mock-slow", "hello", 5) == [200] * 5
    wait_until(
        lambda: statuses(receiver, "json", "json", "latency_p99")[:1] == ["firing"],
        timeout=10,
        what="latency alert firing",
    )
    active = admin_alerts(gateway)["active"]
    assert [a["rule"] for a in active] == ["latency_p99"]
    assert active[0]["value"] > 100
    # No more traffic: the window empties and the alert resolves, once, in every format.
    wait_fired_and_resolved(receiver, "latency_p99")
    recent = admin_alerts(gateway)["recent"]
    assert any(r["rule"] == "latency_p99" and r["status"] == "resolved" for r in recent)
    # The flaky receiver refused the first two posts with a 500 and got both notifications
    # after retries; each retry is counted.
    wait_until(
        lambda: statuses(receiver, "flaky", "json", "latency_p99") == ["firing", "resolved"],
        what=f"flaky receiver: {receiver.received('flaky')}",
    )
    assert receiver.posts["flaky"] == 4
    metrics = httpx.get(f"{gateway.base_url}/metrics").text
    retried = re.search(
        r'relaygate_alert_notifications_total\{outcome="retried",webhook="5-json"\} (\S+)', metrics
    )
    assert retried is not None and float(retried.group(1)) == 2.0, metrics
    sent = re.search(
        r'relaygate_alert_notifications_total\{outcome="sent",webhook="5-json"\} (\S+)', metrics
    )
    assert sent is not None and float(sent.group(1)) == 2.0


def test_failing_answers_fire_the_error_alert_then_resolve(
    gateway: Gateway, receiver: WebhookReceiver
) -> None:
    codes = send(gateway, "mock-fast", "mock:fault 500", 5)
    assert all(code >= 500 for code in codes), codes
    wait_fired_and_resolved(receiver, "error_rate")


def test_an_open_breaker_fires_and_resolves_once_a_probe_succeeds(
    gateway: Gateway, receiver: WebhookReceiver
) -> None:
    codes = send(gateway, "mock-breaker", "mock:fault 500", 3)
    assert all(code >= 500 for code in codes), codes
    alert = "breaker_open [mock-breaker-dep"
    wait_until(
        lambda: statuses(receiver, "json", "json", alert)[:1] == ["firing"],
        timeout=15,
        what="breaker alert firing",
    )
    # After the cooldown one probe goes through; its success closes the breaker.
    wait_until(lambda: send(gateway, "mock-breaker", "hello", 1) == [200], timeout=15, what="probe")
    wait_fired_and_resolved(receiver, alert)


def admin_alerts(gw: Gateway) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {gw.admin_token}"}
    reply = httpx.get(f"{gw.base_url}/admin/alerts", headers=headers)
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data
