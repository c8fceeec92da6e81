"""Usage reports and bills in USD or CNY, time parsing, month bounds and projections."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relaygate.accounting import FxTable, month_bill, parse_month, usage_report
from relaygate.accounting.reports import parse_time
from relaygate.store import (
    KeySpec,
    LedgerRow,
    LedgerStore,
    SpendDelta,
    create_ledger_store,
    open_store,
)

FX = FxTable({"USD": 1, "CNY": 7.3})
NOW = datetime(2031, 4, 16, tzinfo=UTC)  # half of April (30 days) elapsed


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'relaygate.db'}"


@pytest.fixture
async def store(url: str) -> AsyncIterator[LedgerStore]:
    ledger = create_ledger_store(url)
    await ledger.open()
    yield ledger
    await ledger.close()


def row(key: str, model: str, at: datetime, cost: float) -> LedgerRow:
    return LedgerRow(
        id=uuid.uuid4().hex,
        request_id="r",
        created_at=at,
        key_name=key,
        route="openai.chat",
        model_requested=model,
        model_used=model,
        deployment=None,
        status=200,
        outcome="ok",
        error_kind=None,
        attempts=1,
        stream=False,
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cost_usd=cost,
        latency_ms=1,
        upstream_ms=1,
        ttft_ms=None,
        cache_hit=False,
    )


async def test_report_in_cny(store: LedgerStore) -> None:
    await store.insert_rows(
        [row("a", "m1", NOW, 1.0), row("a", "m2", NOW, 0.5), row("b", "m1", NOW, 2.0)]
    )
    report = await usage_report(store, FX, "model", currency="cny")
    assert report.currency == "CNY"
    assert [(line.group, line.requests) for line in report.lines] == [("m1", 2), ("m2", 1)]
    assert report.lines[0].cost == pytest.approx(3.0 * 7.3)
    assert report.total.cost == pytest.approx(3.5 * 7.3)
    assert report.total.input_tokens == 30
    data = report.to_json()
    assert data["currency"] == "CNY" and data["total"]["requests"] == 3


async def test_report_of_an_unknown_currency_is_refused(store: LedgerStore) -> None:
    with pytest.raises(ValueError, match="currency: unknown currency 'EUR'"):
        await usage_report(store, FX, "key", currency="EUR")


async def test_bill_projects_the_month_and_shows_budgets(store: LedgerStore, url: str) -> None:
    async with await open_store(url) as keys:
        for name, fields in (
            ("a", {"monthly_budget_usd": 10.0}),
            ("b", {"balance_usd": 5.0}),
            ("idle", {}),
        ):
            digest = hashlib.sha256(name.encode()).hexdigest()
            await keys.create_key(KeySpec(name=name, key_hash=digest, key_prefix="rg-x", **fields))  # type: ignore[arg-type]
        records = await keys.list_keys()
    await store.insert_rows(
        [
            row("a", "m", NOW - timedelta(days=2), 3.0),
            row("b", "m", NOW - timedelta(days=1), 1.0),
            row("a", "m", datetime(2031, 3, 31, 23, tzinfo=UTC), 50.0),  # last month
        ]
    )
    await store.apply_spend("2031-04", [SpendDelta("b", 0.0, 1.0, 1.0)])
    bill = await month_bill(store, records, FX, now=NOW)
    lines = {line.key: line for line in bill.lines}
    assert bill.month == "2031-04" and bill.fraction_elapsed == pytest.approx(0.5)
    assert lines["a"].month_to_date == pytest.approx(3.0)
    assert lines["a"].projected == pytest.approx(6.0)
    assert lines["a"].budget_left == pytest.approx(7.0)
    assert lines["b"].balance_left == pytest.approx(4.0)
    assert lines["idle"].month_to_date == 0 and lines["idle"].budget_left is None
    assert bill.total == pytest.approx(4.0)
    cny = await month_bill(store, records, FX, now=NOW, currency="CNY")
    assert cny.total == pytest.approx(4.0 * 7.3)
    march = await month_bill(store, records, FX, now=NOW, month="2031-03")
    assert march.fraction_elapsed == 1.0
    assert {line.key: line.projected for line in march.lines}["a"] == pytest.approx(50.0)
    revoked = [replace(r, revoked_at=NOW) if r.name == "idle" else r for r in records]
    assert "idle" not in {
        line.key for line in (await month_bill(store, revoked, FX, now=NOW)).lines
    }


def test_parse_time_forms() -> None:
    assert parse_time("2031-05-06", "since") == datetime(2031, 5, 6, tzinfo=UTC)
    assert parse_time("2031-05-06T07:08:09+08:00", "since").utcoffset() == timedelta(hours=8)
    assert parse_time("7d", "since", NOW) == NOW - timedelta(days=7)
    assert parse_time("90m", "since", NOW) == NOW - timedelta(minutes=90)
    with pytest.raises(ValueError, match="since: expected a date"):
        parse_time("last tuesday", "since")


def test_parse_month() -> None:
    assert parse_month("2031-12") == (
        datetime(2031, 12, 1, tzinfo=UTC),
        datetime(2032, 1, 1, tzinfo=UTC),
    )
    # 0000 and 9999-12 (whose next month is in year 10000) are outside what dates can hold.
    for bad in ("2031-13", "2031-1", "May", "0000-01", "9999-12"):
        with pytest.raises(ValueError, match="month: expected YYYY-MM"):
            parse_month(bad)
