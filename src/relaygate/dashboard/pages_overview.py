"""The overview: the page, and its live part that htmx fetches every few seconds."""

from __future__ import annotations

from typing import Any

from relaygate.dashboard.admin_calls import call_admin
from relaygate.dashboard.live import LiveSampler
from relaygate.dashboard.render import render, send_page
from relaygate.dashboard.view import View
from relaygate.recovery import readiness

REFRESH_SECONDS = 2
SAMPLER = LiveSampler()


async def overview(view: View) -> None:
    live_part = await _live(view)
    await view.page("overview.html", active="overview", refresh=REFRESH_SECONDS, **live_part)


async def live(view: View) -> None:
    """Only the live part (what the page swaps in on each poll)."""
    await send_page(view.send, render("overview_live.html", **await _live(view)))


async def _live(view: View) -> dict[str, Any]:
    services = view.services
    ready, report = readiness(services.keys, services.database)
    alerts = await call_admin(services, "GET", "/admin/alerts")
    ledger = await call_admin(services, "GET", "/admin/ledger")
    return {
        "o": SAMPLER.overview(services.metrics.gateway_view()),
        "ready": ready,
        "readiness": report,
        "redis_configured": bool(services.settings.redis_url),
        "alerts": alerts.body if alerts.ok else {"active": [], "recent": [], "enabled": False},
        "ledger": ledger.body if ledger.ok else {},
    }
