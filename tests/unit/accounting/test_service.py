"""``Accounting``: the estimate a reservation uses, and what ``finish`` bills and records."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.unit.accounting.test_budget import key
from tests.unit.accounting.test_ledger_writer import FakeLedgerStore

from relaygate.accounting import (
    Accounting,
    LedgerWriter,
    LocalBudgets,
    SpillFile,
    build_accounting,
    ledger_row,
)
from relaygate.core.context import AttemptRecord, RequestContext
from relaygate.core.types import ChatRequest, Message, TextBlock, Usage
from relaygate.routing.catalog import Catalog, build_catalog
from relaygate.settings import load_settings
from relaygate.settings.accounting import AccountingSettings, BudgetSettings, LedgerSettings
from relaygate.store.ledger_records import LedgerRow
from relaygate.transport.http import HttpTransport


def catalog(models: list[dict[str, object]] | None = None) -> Catalog:
    overrides = {"models": models} if models else {}
    settings = load_settings(None, env={}, overrides=overrides)
    return build_catalog(settings, HttpTransport())


@pytest.fixture
async def accounting(tmp_path: Path) -> AsyncIterator[tuple[Accounting, FakeLedgerStore]]:
    store = FakeLedgerStore()
    writer = LedgerWriter(store, SpillFile(tmp_path, "spill"), LedgerSettings())  # type: ignore[arg-type]
    budgets = LocalBudgets(store, BudgetSettings())  # type: ignore[arg-type]
    routes = catalog()
    yield Accounting(AccountingSettings(), store, budgets, writer, routes), store  # type: ignore[arg-type]
    await routes.close()


def request(max_tokens: int | None = None, text: str = "x" * 400) -> ChatRequest:
    return ChatRequest(
        dialect="openai",
        model="mock-gpt",
        messages=(Message("user", (TextBlock(text),)),),
        max_tokens=max_tokens,
        raw={"messages": [{"role": "user", "content": text}]},
    )


def finished(**fields: object) -> RequestContext:
    ctx = RequestContext("req_1", "openai.chat", "openai")
    ctx.key_name, ctx.model_requested, ctx.model_used = "k", "mock-gpt", "mock-gpt"
    ctx.deployment = "mock-gpt#0"
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


async def rows(accounting: Accounting, store: FakeLedgerStore) -> list[object]:
    assert accounting.ledger is not None
    await accounting.ledger.flush()
    return list(store.rows.values())


async def test_estimate_prices_the_prompt_and_all_of_max_tokens(
    accounting: tuple[Accounting, FakeLedgerStore],
) -> None:
    acc, _ = accounting
    route = acc._catalog.resolve("mock-gpt")
    small = acc.estimate(request(max_tokens=100), route)
    large = acc.estimate(request(max_tokens=10_000), route)
    assert small > 0 and large == pytest.approx(small + 9_900 * 4.0 / 1e6)
    default = acc.estimate(request(), route)  # the model's default_max_tokens (4096)
    assert default == pytest.approx(acc.estimate(request(max_tokens=4096), route))


async def test_reserve_holds_only_for_budgeted_keys(
    accounting: tuple[Accounting, FakeLedgerStore],
) -> None:
    acc, _ = accounting
    route = acc._catalog.resolve("mock-gpt")
    ctx = finished()
    await acc.reserve(ctx, key(cap=None), request(100), route)
    assert ctx.budget_hold is None and ctx.chat_request is not None
    await acc.reserve(ctx, key(cap=1.0), request(100), route)
    assert ctx.budget_hold is not None and ctx.budget_hold.amount_usd > 0


async def test_finish_prices_and_records_one_row(
    accounting: tuple[Accounting, FakeLedgerStore],
) -> None:
    acc, store = accounting
    ctx = finished(usage=Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=2000))
    acc.finish(ctx)
    assert ctx.cost_usd == pytest.approx((1000 * 1 + 500 * 4 + 2000 * 0.1) / 1e6)
    [row] = await rows(acc, store)
    assert row.cost_usd == ctx.cost_usd and row.cache_read_tokens == 2000  # type: ignore[attr-defined]


async def test_a_cut_short_stream_is_billed_for_what_was_delivered(
    accounting: tuple[Accounting, FakeLedgerStore],
) -> None:
    acc, store = accounting
    ctx = finished(outcome="partial", stream=True, delivered_chars=800, chat_request=request())
    acc.finish(ctx)
    [row] = await rows(acc, store)
    assert row.output_tokens == 200 and row.input_tokens > 100  # type: ignore[attr-defined]
    assert ctx.cost_usd > 0


async def test_unauthenticated_requests_are_not_recorded(
    accounting: tuple[Accounting, FakeLedgerStore],
) -> None:
    acc, store = accounting
    acc.finish(finished(key_name=None, status=401, outcome="error"))
    assert await rows(acc, store) == []


async def test_finish_settles_the_hold(accounting: tuple[Accounting, FakeLedgerStore]) -> None:
    acc, _ = accounting
    route = acc._catalog.resolve("mock-gpt")
    ctx = finished(usage=Usage(input_tokens=10, output_tokens=10))
    await acc.reserve(ctx, key(cap=1.0), request(100), route)
    acc.finish(ctx)
    view = acc.budgets.view("k")
    assert view is not None and view.reserved == 0 and view.month_spent == ctx.cost_usd


async def test_unpriced_deployments_are_reported_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = [{"name": "home-made", "deployments": [{"provider": "mock"}]}]
    with caplog.at_level(logging.WARNING, logger="relaygate.accounting"):
        acc = await build_accounting(
            AccountingSettings(), f"sqlite:///{tmp_path / 'db'}", tmp_path, catalog(models)
        )
    await acc.stop()
    assert acc.unpriced_deployments() == ["home-made#0"]
    assert "no price for deployment home-made#0" in caplog.text


@pytest.mark.parametrize(
    ("model", "upstream", "priced_as"),
    [
        ("gpt-4o-mini", None, "gpt-4o-mini"),
        ("gpt-4.1-nano", None, "gpt-4.1-nano"),
        ("claude-opus-4-5", None, "claude-opus-4-5"),
        ("gpt-4o-cheap", "gpt-4o-mini", "gpt-4o-mini"),
    ],
)
async def test_a_deployment_is_billed_at_its_own_models_price(
    tmp_path: Path, model: str, upstream: str | None, priced_as: str
) -> None:
    deployment: dict[str, object] = {"provider": "mock"}
    if upstream:
        deployment["model"] = upstream
    routes = catalog([{"name": model, "deployments": [deployment]}])
    store = FakeLedgerStore()
    budgets = LocalBudgets(store, BudgetSettings())  # type: ignore[arg-type]
    acc = Accounting(AccountingSettings(), store, budgets, None, routes)  # type: ignore[arg-type]
    ctx = finished(deployment=f"{model}#0", usage=Usage(input_tokens=1_000_000))
    acc.finish(ctx)
    await routes.close()
    price = acc.prices.lookup(priced_as)
    assert price is not None and ctx.cost_usd == pytest.approx(price.input)


def test_the_ledger_row_holds_a_clipped_model_name() -> None:
    ctx = finished(model_requested="m" * 100_000)
    row = ledger_row(ctx, None, 0.0, "row-1")
    assert row.model_requested is not None and len(row.model_requested) <= 300
    assert row.model_requested.startswith("m" * 256)


def test_the_ledger_row_takes_each_field_from_its_own_source() -> None:
    # ledger_row builds the row positionally: each field must land where its name says.
    ctx = finished(
        key_name="key-a",
        route="anthropic.chat",
        model_requested="asked",
        model_used="used",
        deployment="dep#1",
        status=207,
        outcome="partial",
        error_kind="kind-x",
        attempts=[
            AttemptRecord("dep#0", "overloaded", 529, 0.012),
            AttemptRecord("dep#1", "ok", 200, 0.048),
        ],
        stream=True,
        upstream_seconds=0.25,
        first_token_at=None,
        cache_hit=True,
        end_user="shopper",
        tags={"team": "cs"},
    )
    ctx.started -= 0.5
    ctx.first_token_at = ctx.started + 0.125
    usage = Usage(
        input_tokens=11,
        output_tokens=12,
        cache_read_tokens=13,
        cache_write_tokens=14,
        cache_write_1h_tokens=15,
    )
    before = datetime.now(UTC)
    row = ledger_row(ctx, usage, 1.5, "row-9")
    assert before - timedelta(seconds=0.6) < row.created_at < before - timedelta(seconds=0.4)
    assert row.latency_ms == pytest.approx(500, abs=50)
    wanted = LedgerRow(
        id="row-9",
        request_id="req_1",
        created_at=row.created_at,
        key_name="key-a",
        route="anthropic.chat",
        model_requested="asked",
        model_used="used",
        deployment="dep#1",
        status=207,
        outcome="partial",
        error_kind="kind-x",
        attempts=2,
        stream=True,
        input_tokens=11,
        output_tokens=12,
        cache_read_tokens=13,
        cache_write_tokens=14,
        cost_usd=1.5,
        latency_ms=row.latency_ms,
        upstream_ms=250.0,
        ttft_ms=pytest.approx(125.0),  # type: ignore[arg-type]
        cache_hit=True,
        attempt_log="dep#0:overloaded:529:12,dep#1:ok:200:48",
        cache_write_1h_tokens=15,
        end_user="shopper",
        tags={"team": "cs"},
    )
    assert row == wanted
    ctx.coalesced_with = "req_0"
    assert ledger_row(ctx, None, 0.0, "row-10").attempt_log == "coalesced:req_0"
