"""Usage reports and monthly bills, shared by the CLI and the admin API.

Amounts are kept in USD everywhere and converted once, here, with the configured FX table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from relaygate.accounting.attribution import TAG_KEY
from relaygate.accounting.fx import FxTable
from relaygate.store.ledger_records import GROUP_BY_CHOICES, GroupBy, UsageFilter, UsageGroup
from relaygate.store.protocols import LedgerStore
from relaygate.store.records import KeyRecord

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
RELATIVE_PATTERN = re.compile(r"^(\d{1,5})([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class ReportLine:
    group: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class UsageReport:
    by: str
    since: datetime | None
    until: datetime | None
    currency: str
    lines: tuple[ReportLine, ...]
    total: ReportLine
    where: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "currency": self.currency,
            "filter": self.where,
            "rows": [asdict(line) for line in self.lines],
            "total": asdict(self.total),
        }


@dataclass(frozen=True, slots=True)
class BillLine:
    key: str
    owner: str | None
    team: str | None
    requests: int
    month_to_date: float
    projected: float
    monthly_budget: float | None
    budget_left: float | None
    balance_left: float | None


@dataclass(frozen=True, slots=True)
class Bill:
    month: str
    currency: str
    as_of: datetime
    fraction_elapsed: float
    lines: tuple[BillLine, ...]

    @property
    def total(self) -> float:
        return sum(line.month_to_date for line in self.lines)

    @property
    def projected_total(self) -> float:
        return sum(line.projected for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "currency": self.currency,
            "as_of": _iso(self.as_of),
            "fraction_elapsed": round(self.fraction_elapsed, 6),
            "keys": [asdict(line) for line in self.lines],
            "total": self.total,
            "projected_total": self.projected_total,
        }


def check_group_by(value: str) -> tuple[GroupBy, str | None]:
    """``value`` (``key``, ``model``, ``day``, ``user`` or ``tag:<key>``) as a report grouping
    and, for a tag, its key; ValueError naming the field."""
    by, _, tag_key = value.partition(":")
    for choice in GROUP_BY_CHOICES:
        if by == choice and (by == "tag") == bool(tag_key):
            if tag_key and not TAG_KEY.fullmatch(tag_key):
                raise ValueError(f"by: '{tag_key[:64]}' is not a tag key")
            return choice, tag_key or None
    raise ValueError(f"by: expected one of key, model, day, user or tag:<key>, got '{value[:20]}'")


def parse_time(value: str, field: str, now: datetime | None = None) -> datetime:
    """``2031-05-06``, an ISO-8601 time (UTC when it has no offset), or ``30m``/``24h``/``7d`` ago.

    Raises ValueError naming ``field``.
    """
    text = value.strip()
    relative = RELATIVE_PATTERN.match(text)
    if relative:
        seconds = int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{field}: expected a date (2031-05-06), an ISO time or a span like 7d, 24h, 30m; "
            f"got '{text[:32]}'"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_month(value: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` -> (first instant, first instant of the next month), UTC."""
    match = MONTH_PATTERN.match(value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month: expected YYYY-MM, got '{value[:20]}'")
    try:
        return month_bounds(datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC))
    except ValueError:  # year 0, or a next month in year 10000
        raise ValueError(
            f"month: expected YYYY-MM from 0001-01 to 9999-11, got '{value}'"
        ) from None


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    year, month = moment.year + moment.month // 12, moment.month % 12 + 1
    return start, datetime(year, month, 1, tzinfo=UTC)


async def usage_report(
    store: LedgerStore,
    fx: FxTable,
    by: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    currency: str | None = None,
    key_name: str | None = None,
    end_user: str | None = None,
    tag: tuple[str, str] | None = None,
) -> UsageReport:
    """Totals per key, model, UTC day, end user or value of one tag (``by="tag:workflow"``) of
    the rows of ``key_name``, ``end_user`` and ``tag`` (each None: all), amounts in
    ``currency`` (the configured default). Raises ValueError for a bad ``by``."""
    group_by, tag_key = check_group_by(by)
    code = fx.check(currency)
    rate = fx.rate(code)
    where = UsageFilter(key_name, end_user, tag)
    groups = await store.usage_groups(group_by, since, until, where=where, tag_key=tag_key)
    lines = tuple(_line(g, rate) for g in groups)
    return UsageReport(by, since, until, code, lines, _sum_lines(lines), _filter_json(where))


async def month_bill(
    store: LedgerStore,
    keys: Sequence[KeyRecord],
    fx: FxTable,
    *,
    currency: str | None = None,
    month: str | None = None,
    now: datetime | None = None,
) -> Bill:
    """Month-to-date spend per key with a linear end-of-month projection.

    For a past month the projection is the month's total. Keys with no spend are listed too
    (unless revoked), so the bill shows every budget.
    """
    code = fx.check(currency)
    rate = fx.rate(code)
    now = now or datetime.now(UTC)
    start, end = parse_month(month) if month else month_bounds(now)
    as_of = min(max(now, start), end)
    fraction = (as_of - start) / (end - start)
    spend = {g.group: g for g in await store.usage_groups("key", start, end)}
    counters = {c.key_name: c for c in await store.load_budgets(start.strftime("%Y-%m"))}
    lines = []
    for key in sorted(keys, key=lambda k: k.name):
        group = spend.get(key.name)
        if group is None and key.revoked:
            continue
        mtd = group.cost_usd if group else 0.0
        projected = mtd / fraction if fraction > 0 else 0.0
        budget_left = None
        if key.monthly_budget_usd is not None:
            budget_left = max(0.0, key.monthly_budget_usd - mtd)
        balance_left = None
        if key.balance_usd is not None:
            used = counters[key.name].balance_spent_usd if key.name in counters else 0.0
            balance_left = key.balance_usd - used
        lines.append(
            BillLine(
                key=key.name,
                owner=key.owner,
                team=key.team,
                requests=group.requests if group else 0,
                month_to_date=mtd * rate,
                projected=projected * rate,
                monthly_budget=_scaled(key.monthly_budget_usd, rate),
                budget_left=_scaled(budget_left, rate),
                balance_left=_scaled(balance_left, rate),
            )
        )
    return Bill(start.strftime("%Y-%m"), code, as_of, fraction, tuple(lines))


def _line(group: UsageGroup, rate: float) -> ReportLine:
    return ReportLine(
        group.group,
        group.requests,
        group.errors,
        group.input_tokens,
        group.output_tokens,
        group.cache_read_tokens,
        group.cache_write_tokens,
        group.cost_usd * rate,
    )


def _sum_lines(lines: Sequence[ReportLine]) -> ReportLine:
    return ReportLine(
        "total",
        sum(x.requests for x in lines),
        sum(x.errors for x in lines),
        sum(x.input_tokens for x in lines),
        sum(x.output_tokens for x in lines),
        sum(x.cache_read_tokens for x in lines),
        sum(x.cache_write_tokens for x in lines),
        sum(x.cost for x in lines),
    )


def _filter_json(where: UsageFilter) -> dict[str, str]:
    shown = {"key": where.key_name, "user": where.end_user}
    if where.tag is not None:
        shown["tag"] = "=".join(where.tag)
    return {name: value for name, value in shown.items() if value is not None}


def _scaled(amount: float | None, rate: float) -> float | None:
    return None if amount is None else amount * rate


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()
