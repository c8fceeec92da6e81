"""What a dashboard page handler gets: the services, the request, its session and its inputs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from relaygate.dashboard.render import render, send_page
from relaygate.dashboard.session import Session
from relaygate.services import Services
from relaygate.web.request import Request, Send

MAX_FORM_BYTES = 64 * 1024
NAV = (
    ("overview", "/dashboard", "Overview"),
    ("keys", "/dashboard/keys", "Keys"),
    ("usage", "/dashboard/usage", "Usage & cost"),
    ("requests", "/dashboard/requests", "Requests"),
    ("jobs", "/dashboard/jobs", "Jobs"),
    ("cache", "/dashboard/cache", "Cache"),
)


@dataclass(slots=True)
class View:
    services: Services
    request: Request
    send: Send
    session: Session
    csrf: str
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)

    async def page(self, template: str, status: int = 200, **context: Any) -> None:
        """Render a page of the logged-in dashboard (with its navigation and CSRF token)."""
        body = render(template, csrf=self.csrf, nav=NAV, **context)
        await send_page(self.send, body, status)

    def text(self, name: str, source: str = "query") -> str:
        values = self.query if source == "query" else self.form
        return values.get(name, "").strip()


Page = Callable[[View], Awaitable[None]]


def parse_pairs(data: bytes) -> dict[str, str]:
    """URL-encoded pairs (a query string or a form body); the last value of a name wins."""
    return dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True))
