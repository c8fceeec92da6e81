"""Usage and cost: totals by day, model, key, end user or tag, in any currency of the FX table,
with a chart per day, a CSV download and the month's bill with its projection."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from relaygate.dashboard.admin_calls import call_admin
from relaygate.dashboard.view import View
from relaygate.web.responses import send_body

GROUPINGS = ("day", "model", "key", "user")
FILTERS = ("since", "until", "key", "user", "tag")
CSV_COLUMNS = (
    "group",
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost",
)
DEFAULT_SINCE = "30d"


def _report_query(view: View) -> dict[str, str]:
    query = {name: view.text(name) for name in FILTERS}
    query["since"] = query["since"] or DEFAULT_SINCE
    tag_key = view.text("tagkey")
    query["by"] = f"tag:{tag_key}" if tag_key else view.text("by") or "day"
    query["currency"] = view.text("currency") or view.services.accounting.fx.default
    return query


async def usage_page(view: View) -> None:
    query = _report_query(view)
    services = view.services
    report = await call_admin(services, "GET", "/admin/usage", query)
    daily = await call_admin(services, "GET", "/admin/usage", {**query, "by": "day"})
    bill = await call_admin(services, "GET", "/admin/bill", {"currency": query["currency"]})
    chart = {**_daily_series(daily.body["rows"] if daily.ok else []), "currency": query["currency"]}
    await view.page(
        "usage.html",
        200 if report.ok else report.status,
        active="usage",
        query=query,
        groupings=GROUPINGS,
        currencies=services.accounting.fx.currencies,
        report=report.body if report.ok else None,
        bill=bill.body if bill.ok else None,
        chart=chart,
        error=report.error or bill.error,
        link=lambda **changes: "/dashboard/usage?" + _encode({**query, **changes}),
        csv_url="/dashboard/usage.csv?" + _encode(query),
    )


async def usage_csv(view: View) -> None:
    query = _report_query(view)
    report = await call_admin(view.services, "GET", "/admin/usage", query)
    if not report.ok:
        await view.page("error.html", report.status, message=report.error)
        return
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, "currency"])
    for row in [*report.body["rows"], {**report.body["total"], "group": "TOTAL"}]:
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS] + [report.body["currency"]])
    by = query["by"].replace(":", "-")
    filename = f"relaygate-usage-by-{by}-{query['currency']}.csv"
    headers = [
        (b"content-type", b"text/csv; charset=utf-8"),
        (b"content-disposition", f'attachment; filename="{filename}"'.encode()),
        (b"cache-control", b"no-store"),
    ]
    await send_body(view.send, 200, out.getvalue().encode(), headers)


def _daily_series(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Cost and requests per UTC day, from the day before the first one with usage to the last,
    days without usage as zeros (so even one day draws a line)."""
    by_day = {row["group"]: row for row in rows}
    series: dict[str, list[Any]] = {"days": [], "cost": [], "requests": []}
    if not by_day:
        return series
    day = date.fromisoformat(min(by_day)) - timedelta(days=1)
    last = date.fromisoformat(max(by_day))
    while day <= last:
        row = by_day.get(day.isoformat(), {})
        series["days"].append(day.isoformat())
        series["cost"].append(row.get("cost", 0.0))
        series["requests"].append(row.get("requests", 0))
        day += timedelta(days=1)
    return series


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a ``'``."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _encode(query: dict[str, str]) -> str:
    return urlencode({k: v for k, v in query.items() if v})
