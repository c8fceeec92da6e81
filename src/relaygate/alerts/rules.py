"""The built-in alert rules: each reads the gateway's own state and says what is wrong now.

A rule is anything with a ``name`` and a ``check(now)`` returning its current ``Finding``s; the
engine (``engine.py``) turns findings appearing, persisting and disappearing into firing, repeated
and resolved notifications. Another package adds a rule by passing it to ``AlertEngine`` (a jobs
package would add a dead-letter rule that way); nothing here needs to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from relaygate.accounting.budget import Counters
from relaygate.admission.degrade import Level
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


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong now: ``rule`` and ``subject`` (a deployment, a key, a model; "" for the
    whole gateway) identify it across evaluations."""

    rule: str
    subject: str
    summary: str
    value: float
    threshold: float
    severity: str = "warning"

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.subject}" if self.subject else self.rule


class Rule(Protocol):
    name: str

    def check(self, now: float) -> Iterable[Finding]:
        """What is wrong at ``now`` (monotonic seconds)."""
        ...


class LatencyP99:
    name = "latency_p99"

    def __init__(self, settings: LatencyRule, window: RequestWindow) -> None:
        self._settings = settings
        self._window = window

    def check(self, now: float) -> Iterable[Finding]:
        s = self._settings
        stats = self._window.stats(s.window_seconds)
        if stats.requests >= s.min_requests and stats.p99_ms > s.threshold_ms:
            yield Finding(
                self.name,
                "",
                f"p99 latency {stats.p99_ms:.0f} ms over the last {s.window_seconds:g} s "
                f"({stats.requests} requests) is above {s.threshold_ms:g} ms",
                stats.p99_ms,
                s.threshold_ms,
            )


class ErrorRate:
    name = "error_rate"

    def __init__(self, settings: ErrorRule, window: RequestWindow) -> None:
        self._settings = settings
        self._window = window

    def check(self, now: float) -> Iterable[Finding]:
        s = self._settings
        stats = self._window.stats(s.window_seconds)
        if stats.requests >= s.min_requests and stats.error_rate > s.threshold:
            yield Finding(
                self.name,
                "",
                f"{stats.error_rate:.1%} of {stats.requests} requests over the last "
                f"{s.window_seconds:g} s failed with a 5xx (threshold {s.threshold:.1%})",
                stats.error_rate,
                s.threshold,
                severity="critical",
            )


class BudgetUse:
    name = "budget"

    def __init__(
        self,
        settings: BudgetRule,
        keys: Callable[[], Iterable[KeyRecord]],
        counters: Callable[[str], Counters | None],
        month: Callable[[], str] = lambda: datetime.now(UTC).strftime("%Y-%m"),
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._counters = counters
        self._month = month

    def used(self) -> Iterator[tuple[KeyRecord, str, float, float]]:
        """(key, "monthly budget" | "prepaid balance", used USD, limit USD) of every enabled key
        with a budget or balance this process has counters for."""
        month = self._month()
        for key in self._keys():
            seen = None if key.disabled else self._counters(key.name)
            if seen is None:
                continue
            # Counters of a key idle since last month still hold that month's spend.
            month_spent = seen.month_spent if seen.month == month else 0.0
            for what, used, limit in (
                ("monthly budget", month_spent, key.monthly_budget_usd),
                ("prepaid balance", seen.balance_spent, key.balance_usd),
            ):
                if limit is not None and limit > 0:
                    yield key, what, used, limit

    def check(self, now: float) -> Iterable[Finding]:
        threshold = self._settings.threshold
        fired: set[str] = set()
        for key, what, used, limit in self.used():
            if key.name not in fired and used / limit >= threshold:
                fired.add(key.name)
                yield Finding(
                    self.name,
                    key.name,
                    f"key {key.name} has used {used / limit:.0%} of its {what} "
                    f"(${used:.2f} of ${limit:.2f})",
                    used / limit,
                    threshold,
                )


class BreakerOpen:
    """A breaker that has not been closed at any evaluation for ``open_seconds``; half-open
    counts as open (it re-opens after a failed probe)."""

    name = "breaker_open"

    def __init__(
        self, settings: BreakerRule, snapshot: Callable[[], Iterable[HealthSnapshot]]
    ) -> None:
        self._settings = settings
        self._snapshot = snapshot
        self._open_since: dict[str, float] = {}

    def check(self, now: float) -> Iterable[Finding]:
        limit = self._settings.open_seconds
        still_open: dict[str, float] = {}
        for item in self._snapshot():
            if item.state is BreakerState.CLOSED:
                continue
            since = still_open[item.deployment] = self._open_since.get(item.deployment, now)
            if now - since >= limit:
                yield Finding(
                    self.name,
                    item.deployment,
                    f"circuit breaker of {item.deployment} open for {now - since:.0f} s",
                    now - since,
                    limit,
                    severity="critical",
                )
        self._open_since = still_open


class Degraded:
    name = "degradation"

    def __init__(
        self, settings: DegradationRule, levels: Callable[[], Mapping[str, Level]]
    ) -> None:
        self._settings = settings
        self._levels = levels
        self._at_least = Level[settings.level.upper()]

    def check(self, now: float) -> Iterable[Finding]:
        for model, level in self._levels().items():
            if level >= self._at_least:
                yield Finding(
                    self.name,
                    model,
                    f"model {model} is at degradation level {level.name.lower()}",
                    float(level),
                    float(self._at_least),
                )


class LedgerSpilling:
    """The ledger database refuses writes, so rows go to the spill file on disk."""

    name = "ledger_spill"

    def __init__(self, spilling: Callable[[], tuple[bool, int]]) -> None:
        self._spilling = spilling

    def check(self, now: float) -> Iterable[Finding]:
        spilling, spill_bytes = self._spilling()
        if spilling:
            yield Finding(
                self.name,
                "",
                f"ledger rows are spilling to disk ({spill_bytes} bytes waiting): "
                "the ledger database does not accept writes",
                float(spill_bytes),
                0.0,
                severity="critical",
            )
