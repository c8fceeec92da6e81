"""Requests: the ledger newest first, a page at a time, filtered; one request's detail."""

from __future__ import annotations

from urllib.parse import urlencode

from relaygate.dashboard.admin_calls import call_admin
from relaygate.dashboard.view import View

PAGE_SIZE = 50
FILTERS = ("key", "model", "status", "user", "tag")


async def requests_page(view: View) -> None:
    filters = {name: view.text(name) for name in FILTERS}
    page = view.text("page")
    number = int(page) if page.isdigit() and 0 < int(page) <= 100_000 else 1
    query = {**filters, "limit": str(PAGE_SIZE + 1), "offset": str((number - 1) * PAGE_SIZE)}
    answer = await call_admin(view.services, "GET", "/admin/usage/requests", query)
    rows = answer.body["requests"] if answer.ok else []

    def link(page_number: int) -> str:
        return "/dashboard/requests?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "page": page_number}
        )

    await view.page(
        "requests.html",
        200 if answer.ok else answer.status,
        active="requests",
        filters=filters,
        rows=rows[:PAGE_SIZE],
        page=number,
        previous=link(number - 1) if number > 1 else None,
        next=link(number + 1) if len(rows) > PAGE_SIZE else None,
        error=answer.error,
    )


async def detail_page(view: View) -> None:
    request_id = view.text("id")
    rows = await view.services.accounting.store.rows_for_request(request_id) if request_id else []
    attempts = [[_attempt(part) for part in row.attempt_log.split(",") if part] for row in rows]
    await view.page(
        "request_detail.html",
        200 if rows else 404,
        active="requests",
        request_id=request_id,
        rows=list(zip(rows, attempts, strict=True)),
    )


def _attempt(text: str) -> dict[str, str]:
    """One ``deployment:outcome:status:ms`` entry of ``attempt_log`` (deployment names may hold
    colons, so the fields are taken from the right)."""
    parts = text.rsplit(":", 3)
    if len(parts) != 4:
        return {"deployment": text, "outcome": "", "status": "", "ms": ""}
    deployment, outcome, status, ms = parts
    return {"deployment": deployment, "outcome": outcome, "status": status, "ms": ms}
