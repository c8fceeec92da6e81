"""``GET /admin/alerts``: the alerts firing now and the recently resolved ones."""

from __future__ import annotations

from relaygate.admin.http import query_params, send_ok
from relaygate.services import Services
from relaygate.web.request import Request, Send


async def alerts(services: Services, request: Request, send: Send) -> None:
    query_params(request, frozenset())
    engine = services.alerts.engine
    await send_ok(
        send,
        {
            "enabled": services.alerts.settings.enabled,
            "rules": [rule.name for rule in engine.rules],
            "active": engine.active(),
            "recent": engine.recent(),
        },
    )
