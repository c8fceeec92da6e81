"""The alert engine: fire once, repeat while active, resolve when gone; rules from real state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from tests.unit.admission.support import BASE_KEY

from relaygate.accounting.budget import Counters
from relaygate.admission.degrade import Level
from relaygate.alerts import AlertEngine, Finding, Notification
from relaygate.alerts.formats import refused_in_body, webhook_body
from relaygate.alerts.rules import BreakerOpen, BudgetUse, Degraded, ErrorRate, LatencyP99
from relaygate.observability.window import RequestWindow
from relaygate.routing.breaker import BreakerState
from relaygate.routing.health import HealthSnapshot
from relaygate.settings.alerts import (
    BreakerRule,
    BudgetRule,
    DegradationRule,
    ErrorRule,
    LatencyRule,
)
from relaygate.store.records import KeyRecord


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Switch:
    name = "switch"

    def __init__(self) -> None:
        self.on = False

    def check(self, now: float) -> Iterable[Finding]:
        if self.on:
            yield Finding(self.name, "dep#0", "it is on", 1.0, 0.0)


def engine_with(rule: Switch, clock: Clock) -> tuple[AlertEngine, list[Notification]]:
    sent: list[Notification] = []
    engine = AlertEngine(
        [rule], sent.append, interval_seconds=1, repeat_seconds=60, recent=5, clock=clock
    )
    return engine, sent


def test_fires_once_repeats_at_the_interval_and_resolves() -> None:
    clock, rule = Clock(), Switch()
    engine, sent = engine_with(rule, clock)
    engine.evaluate()
    assert sent == []
    rule.on = True
    engine.evaluate()
    clock.now += 30
    engine.evaluate()
    assert [(n.status, n.repeat) for n in sent] == [("firing", False)]
    assert [a["id"] for a in engine.active()] == ["switch:dep#0"]
    clock.now += 31
    engine.evaluate()
    assert [(n.status, n.repeat) for n in sent] == [("firing", False), ("firing", True)]
    rule.on = False
    engine.evaluate()
    engine.evaluate()
    assert [n.status for n in sent] == ["firing", "firing", "resolved"]
    assert engine.active() == []
    (recent,) = engine.recent()
    assert recent["status"] == "resolved" and recent["resolved_at"] is not None


def test_a_failing_rule_does_not_stop_the_others() -> None:
    class Broken:
        name = "broken"

        def check(self, now: float) -> Iterable[Finding]:
            raise RuntimeError("boom")

    rule = Switch()
    rule.on = True
    sent: list[Notification] = []
    engine = AlertEngine([Broken(), rule], sent.append, interval_seconds=1, repeat_seconds=60)
    engine.evaluate()
    assert [n.finding.rule for n in sent] == ["switch"]


def test_window_rules_need_enough_requests_and_a_breach() -> None:
    clock = Clock()
    window = RequestWindow(60, clock)
    latency = LatencyP99(LatencyRule(threshold_ms=100, window_seconds=60, min_requests=5), window)
    errors = ErrorRate(ErrorRule(threshold=0.01, window_seconds=60, min_requests=5), window)
    for _ in range(4):
        window.record(0.5, 500)
    assert list(latency.check(clock.now)) == [] and list(errors.check(clock.now)) == []
    window.record(0.5, 500)
    assert [f.rule for f in latency.check(clock.now)] == ["latency_p99"]
    assert [f.rule for f in errors.check(clock.now)] == ["error_rate"]
    clock.now += 61
    for _ in range(200):
        window.record(0.01, 200)
    assert list(latency.check(clock.now)) == [] and list(errors.check(clock.now)) == []


def key(
    name: str, *, budget: float | None = None, balance: float | None = None, disabled: bool = False
) -> KeyRecord:
    return replace(
        BASE_KEY,
        id=name,
        name=name,
        key_hash=name,
        monthly_budget_usd=budget,
        balance_usd=balance,
        disabled=disabled,
    )


def test_budget_rule_fires_per_key_past_the_threshold() -> None:
    keys = [
        key("near", budget=10.0),
        key("far", budget=10.0),
        key("prepaid", balance=5.0),
        key("none"),
        key("revoked", budget=1.0, disabled=True),
    ]
    spent = {
        "near": Counters("2031-05", month_spent=8.5),
        "far": Counters("2031-05", month_spent=1.0),
        "prepaid": Counters("2031-05", month_spent=4.5, balance_spent=4.5),
        "none": Counters("2031-05", month_spent=100.0),
        "revoked": Counters("2031-05", month_spent=100.0),
    }
    rule = BudgetUse(BudgetRule(threshold=0.8), lambda: keys, spent.get, lambda: "2031-05")
    assert sorted(f.subject for f in rule.check(0)) == ["near", "prepaid"]
    # In June, May's spend no longer counts against the monthly budget; the balance still does.
    june = BudgetUse(BudgetRule(threshold=0.8), lambda: keys, spent.get, lambda: "2031-06")
    assert [f.subject for f in june.check(0)] == ["prepaid"]


def test_breaker_rule_waits_for_open_seconds_and_forgets_closed_breakers() -> None:
    states = {"a#0": BreakerState.OPEN}

    def snapshot() -> Iterable[HealthSnapshot]:
        return [HealthSnapshot(d, s, 0, None) for d, s in states.items()]

    rule = BreakerOpen(BreakerRule(open_seconds=60), snapshot)
    assert list(rule.check(100)) == []
    states["a#0"] = BreakerState.HALF_OPEN
    assert list(rule.check(150)) == []
    assert [f.subject for f in rule.check(161)] == ["a#0"]
    states["a#0"] = BreakerState.CLOSED
    assert list(rule.check(170)) == []
    states["a#0"] = BreakerState.OPEN
    assert list(rule.check(200)) == []  # open again: the clock starts over


def test_degradation_rule_at_the_configured_level() -> None:
    levels = {"m1": Level.REDUCED, "m2": Level.DEGRADED, "m3": Level.NORMAL}
    degraded = Degraded(DegradationRule(level="degraded"), lambda: levels)
    reduced = Degraded(DegradationRule(level="reduced"), lambda: levels)
    assert [f.subject for f in degraded.check(0)] == ["m2"]
    assert sorted(f.subject for f in reduced.check(0)) == ["m1", "m2"]


def test_webhook_bodies_and_in_body_refusals() -> None:
    clock, rule = Clock(), Switch()
    rule.on = True
    engine, sent = engine_with(rule, clock)
    engine.evaluate()
    (firing,) = sent
    assert webhook_body("slack", firing) == {"text": firing_text(firing)}
    assert webhook_body("feishu", firing)["content"]["text"].startswith("[relaygate] FIRING")
    assert webhook_body("dingtalk", firing)["msgtype"] == "text"
    assert "content" in webhook_body("wecom", firing)["text"]
    generic = webhook_body("json", firing)
    assert generic["status"] == "firing" and generic["rule"] == "switch"
    assert refused_in_body("dingtalk", {"errcode": 310000, "errmsg": "keywords not in content"})
    assert refused_in_body("wecom", {"errcode": 0, "errmsg": "ok"}) is None
    assert refused_in_body("feishu", {"code": 19021, "msg": "sign match fail"})
    assert refused_in_body("feishu", {"StatusCode": 0, "code": 0}) is None


def firing_text(n: Notification) -> str:
    return "[relaygate] FIRING warning: switch [dep#0]: it is on"
