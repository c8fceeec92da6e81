"""``AlertEngine``: evaluates the rules on a timer and notifies on change.

A finding seen for the first time fires (one notification); while it stays, it is re-sent every
``repeat_seconds``; when a round no longer finds it, a ``resolved`` notification goes out and it
moves to the recent list that ``GET /admin/alerts`` shows. Notifications only enter the
dispatcher's bounded queue: evaluating never waits for a webhook.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from relaygate.alerts.rules import Finding, Rule
from relaygate.core.background import BackgroundTask

logger = logging.getLogger("relaygate.alerts")

Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one alert, in every webhook format's terms (``formats.py``)."""

    status: Status
    finding: Finding
    started_at: datetime
    sent_at: datetime
    repeat: bool = False
    resolved_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        f = self.finding
        return {
            "status": self.status,
            "id": f.id,
            "rule": f.rule,
            "subject": f.subject,
            "severity": f.severity,
            "summary": f.summary,
            "value": f.value,
            "threshold": f.threshold,
            "started_at": self.started_at.isoformat(),
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
            "repeat": self.repeat,
        }


@dataclass(slots=True)
class _Active:
    finding: Finding
    started_at: datetime
    last_sent: float


class AlertEngine:
    """The alert state of one gateway process."""

    def __init__(
        self,
        rules: Sequence[Rule],
        notify: Callable[[Notification], None],
        *,
        interval_seconds: float,
        repeat_seconds: float,
        recent: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = list(rules)
        self._notify = notify
        self._interval = interval_seconds
        self._repeat = repeat_seconds
        self._clock = clock
        self._active: dict[str, _Active] = {}
        self._recent: deque[Notification] = deque(maxlen=recent)
        self._loop = BackgroundTask("relaygate-alerts", self._run)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.cancel()

    def evaluate(self) -> None:
        """One round: every rule's findings against the active alerts."""
        now = self._clock()
        wall = datetime.now(UTC)
        seen: dict[str, Finding] = {}
        for rule in self.rules:
            try:
                for finding in rule.check(now):
                    seen[finding.id] = finding
            except Exception:
                logger.exception("alert rule %s failed", rule.name)
        for alert_id, finding in seen.items():
            active = self._active.get(alert_id)
            if active is None:
                self._active[alert_id] = _Active(finding, wall, now)
                self._send(Notification("firing", finding, wall, wall))
            elif now - active.last_sent >= self._repeat:
                active.finding, active.last_sent = finding, now
                self._send(Notification("firing", finding, active.started_at, wall, repeat=True))
            else:
                active.finding = finding
        for alert_id in [a for a in self._active if a not in seen]:
            gone = self._active.pop(alert_id)
            resolved = Notification(
                "resolved", gone.finding, gone.started_at, wall, resolved_at=wall
            )
            self._recent.appendleft(resolved)
            self._send(resolved)

    def active(self) -> list[dict[str, Any]]:
        return [
            Notification("firing", a.finding, a.started_at, a.started_at).to_json()
            for a in self._active.values()
        ]

    def recent(self) -> list[dict[str, Any]]:
        return [n.to_json() for n in self._recent]

    def _send(self, notification: Notification) -> None:
        level = logging.WARNING if notification.status == "firing" else logging.INFO
        fields = notification.to_json()
        logger.log(
            level, "alert %s: %s", notification.status, fields["summary"], extra={"fields": fields}
        )
        self._notify(notification)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.evaluate()
