"""``WebhookDispatcher``: alert notifications to webhooks, off every request's path.

Each webhook has its own bounded queue and sender task (a slow or failing one does not hold up
another). A notification is tried ``attempts`` times with doubling waits; one that still fails
is logged and counted. A full queue drops the notification, logged and counted: alert delivery
must never grow memory or block anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

import aiohttp
import orjson

from relaygate.alerts.engine import Notification
from relaygate.alerts.formats import refused_in_body, webhook_body
from relaygate.core.background import BackgroundTask, Work
from relaygate.settings.alerts import WebhookSettings

logger = logging.getLogger("relaygate.alerts")


class _Webhook:
    def __init__(self, label: str, settings: WebhookSettings, queue_size: int) -> None:
        self.label = label
        self.settings = settings
        self.queue: asyncio.Queue[Notification] = asyncio.Queue(queue_size)
        self.task: BackgroundTask | None = None


class WebhookDispatcher:
    def __init__(self, webhooks: Sequence[WebhookSettings], queue_size: int) -> None:
        self._hooks = [
            _Webhook(f"{i}-{hook.format}", hook, queue_size) for i, hook in enumerate(webhooks)
        ]
        self._session: aiohttp.ClientSession | None = None
        # (webhook label, outcome: sent | failed | dropped | retried) -> count
        self.counts: Counter[tuple[str, str]] = Counter()

    @property
    def labels(self) -> list[str]:
        return [hook.label for hook in self._hooks]

    def start(self) -> None:
        if not self._hooks:
            return
        self._session = aiohttp.ClientSession()
        for hook in self._hooks:
            hook.task = BackgroundTask(f"relaygate-alert-webhook-{hook.label}", self._sender(hook))
            hook.task.start()

    async def stop(self) -> None:
        for hook in self._hooks:
            if hook.task is not None:
                await hook.task.cancel()
        if self._session is not None:
            await self._session.close()

    def notify(self, notification: Notification) -> None:
        """Queue ``notification`` for every webhook; never blocks."""
        for hook in self._hooks:
            try:
                hook.queue.put_nowait(notification)
            except asyncio.QueueFull:
                self.counts[(hook.label, "dropped")] += 1
                logger.error(
                    "alert webhook %s: queue full, notification dropped (%s %s)",
                    hook.label,
                    notification.status,
                    notification.finding.id,
                )

    def _sender(self, hook: _Webhook) -> Work:
        async def run() -> None:
            while True:
                notification = await hook.queue.get()
                await self._deliver(hook, notification)

        return run

    async def _deliver(self, hook: _Webhook, notification: Notification) -> None:
        s = hook.settings
        body = orjson.dumps(webhook_body(s.format, notification))
        wait = s.backoff_seconds
        problem = ""
        for attempt in range(1, s.attempts + 1):
            problem = await self._post(hook, body)
            if not problem:
                self.counts[(hook.label, "sent")] += 1
                return
            if attempt < s.attempts:
                self.counts[(hook.label, "retried")] += 1
                await asyncio.sleep(wait)
                wait *= 2
        self.counts[(hook.label, "failed")] += 1
        logger.error(
            "alert webhook %s: %s %s not delivered after %d attempts: %s",
            hook.label,
            notification.status,
            notification.finding.id,
            s.attempts,
            problem,
        )

    async def _post(self, hook: _Webhook, body: bytes) -> str:
        """ "" when delivered, else what went wrong."""
        assert self._session is not None
        s = hook.settings
        try:
            async with self._session.post(
                s.url,
                data=body,
                headers={"content-type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=s.timeout_seconds),
            ) as response:
                text = await response.read()
                if response.status >= 300:
                    return f"HTTP {response.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            parsed = orjson.loads(text) if text else None
        except orjson.JSONDecodeError:
            return ""
        return refused_in_body(s.format, parsed) or ""
