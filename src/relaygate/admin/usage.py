"""``/admin/usage``, ``/admin/bill``, ``/admin/pricing`` and ``/admin/ledger``: read-only views."""

from __future__ import annotations

from dataclasses import asdict

from relaygate.accounting import check_group_by, month_bill, parse_month, usage_report
from relaygate.accounting.attribution import parse_tag_filter
from relaygate.accounting.reports import parse_time
from relaygate.admin.http import AdminError, query_params, send_ok
from relaygate.services import Services
from relaygate.store.ledger_records import UsageFilter
from relaygate.web.request import Request, Send

MAX_ROWS = 1000
_REPORT_PARAMS = frozenset({"by", "since", "until", "currency", "key", "user", "tag"})
_BILL_PARAMS = frozenset({"month", "currency"})
_ROWS_PARAMS = frozenset({"limit", "offset", "key", "user", "tag", "model", "status"})
MAX_OFFSET = 10_000_000
_PRICING_PARAMS = frozenset({"currency"})


async def usage(services: Services, request: Request, send: Send) -> None:
    """Totals by key, model, day, end user or tag:
    ``?by=tag:workflow&since=7d&currency=CNY&key=name&user=u1&tag=team=cs``."""
    params = query_params(request, _REPORT_PARAMS)
    try:
        by = params.get("by", "key")
        check_group_by(by)
        tag = _tag(params)
        since = parse_time(params["since"], "since") if params.get("since") else None
        until = parse_time(params["until"], "until") if params.get("until") else None
        currency = services.accounting.fx.check(params.get("currency") or None)
    except ValueError as exc:
        raise AdminError.bad_request(str(exc)) from None
    report = await usage_report(
        services.accounting.store,
        services.accounting.fx,
        by,
        since=since,
        until=until,
        currency=currency,
        key_name=params.get("key") or None,
        end_user=params.get("user") or None,
        tag=tag,
    )
    await send_ok(send, report.to_json())


async def bill(services: Services, request: Request, send: Send) -> None:
    """Month-to-date bill per key with an end-of-month projection: ``?month=2031-05``."""
    params = query_params(request, _BILL_PARAMS)
    try:
        month = params.get("month") or None
        if month is not None:
            parse_month(month)
        currency = services.accounting.fx.check(params.get("currency") or None)
    except ValueError as exc:
        raise AdminError.bad_request(str(exc)) from None
    keys = await services.store.list_keys()
    result = await month_bill(
        services.accounting.store, keys, services.accounting.fx, currency=currency, month=month
    )
    await send_ok(send, result.to_json())


async def requests(services: Services, request: Request, send: Send) -> None:
    """The newest ledger rows, a page at a time:
    ``?limit=100&offset=200&key=name&user=u1&tag=team=cs&model=gpt-4o&status=429``."""
    params = query_params(request, _ROWS_PARAMS)
    limit = _whole(params, "limit", 100, 1, MAX_ROWS)
    offset = _whole(params, "offset", 0, 0, MAX_OFFSET)
    status = _whole(params, "status", 0, 100, 599) if params.get("status") else None
    where = UsageFilter(
        params.get("key") or None,
        params.get("user") or None,
        _tag(params),
        model=params.get("model") or None,
        status=status,
    )
    rows = await services.accounting.store.recent_rows(limit, where=where, offset=offset)
    await send_ok(send, {"requests": [r.to_json() for r in rows], "offset": offset})


def _whole(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name) or str(default)
    if not text.isdigit() or not low <= int(text) <= high:
        raise AdminError.bad_request(f"{name}: expected a whole number from {low} to {high}")
    return int(text)


async def pricing(services: Services, request: Request, send: Send) -> None:
    """The price table in use (per million tokens) in ``?currency=``."""
    params = query_params(request, _PRICING_PARAMS)
    fx = services.accounting.fx
    try:
        currency = fx.check(params.get("currency") or "USD")
    except ValueError as exc:
        raise AdminError.bad_request(str(exc)) from None
    rate = fx.rate(currency)
    prices = {
        name: {kind: amount * rate for kind, amount in asdict(price).items()}
        for name, price in services.accounting.prices.items()
    }
    body = {
        "currency": currency,
        "per": "1M tokens",
        "fx": {code: fx.rate(code) for code in fx.currencies},
        "models": prices,
        "unpriced_deployments": services.accounting.unpriced_deployments(),
    }
    await send_ok(send, body)


async def ledger(services: Services, request: Request, send: Send) -> None:
    """The ledger writer's counters: queued, written, spilled, replayed rows."""
    query_params(request, frozenset())
    writer = services.accounting.ledger
    if writer is None:
        await send_ok(send, {"enabled": False})
        return
    await send_ok(send, {"enabled": True, "queued": writer.queued, **asdict(writer.stats)})


def _tag(params: dict[str, str]) -> tuple[str, str] | None:
    """The ``tag=key=value`` filter, or a 400 naming ``tag`` when it is malformed."""
    if not params.get("tag"):
        return None
    try:
        return parse_tag_filter(params["tag"])
    except ValueError as exc:
        raise AdminError.bad_request(str(exc)) from None
