"""The LedgerStore contract: SQLite and PostgreSQL must behave the same."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from relaygate.store import (
    KeySpec,
    LedgerRow,
    LedgerStore,
    ReserveAsk,
    SpendDelta,
    StoreDataError,
    UsageFilter,
    create_ledger_store,
    open_store,
)

MONTH = "2031-05"


def row(
    key: str | None = "team-a",
    *,
    model: str = "mock-gpt",
    at: datetime | None = None,
    cost: float = 0.001,
    outcome: str = "ok",
    status: int = 200,
    request_id: str | None = None,
    row_id: str | None = None,
) -> LedgerRow:
    return LedgerRow(
        id=row_id or uuid.uuid4().hex,
        request_id=request_id or f"req_{uuid.uuid4().hex[:12]}",
        created_at=at or datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        key_name=key,
        route="openai.chat",
        model_requested=model,
        model_used=model,
        deployment=f"{model}#0",
        status=status,
        outcome=outcome,
        error_kind=None if outcome == "ok" else "upstream",
        attempts=1,
        stream=False,
        input_tokens=100,
        output_tokens=20,
        cache_read_tokens=5,
        cache_write_tokens=3,
        cost_usd=cost,
        latency_ms=51.5,
        upstream_ms=50.25,
        ttft_ms=None,
        cache_hit=False,
    )


def key_spec(name: str, **fields: object) -> KeySpec:
    digest = hashlib.sha256(f"rg-{name}-{uuid.uuid4()}".encode()).hexdigest()
    return KeySpec(name=name, key_hash=digest, key_prefix="rg-abcde", **fields)  # type: ignore[arg-type]


async def test_rows_round_trip_every_field(ledger: LedgerStore) -> None:
    wanted = row(request_id="req_same")
    streamed = LedgerRow(
        **{
            **wanted.to_json(),
            "id": "x2",
            "created_at": wanted.created_at,
            "stream": True,
            "ttft_ms": 12.5,
            "cache_hit": True,
            "key_name": None,
            "attempt_log": "a#0:overloaded:529:12,b#0:ok:200:48",
            "cache_write_tokens": 3000,
            "cache_write_1h_tokens": 2000,
            "end_user": "shopper-7",
            "tags": {"workflow": "wf_123", "team": "cs"},
        }
    )
    assert await ledger.insert_rows([wanted, streamed]) == 2
    got = await ledger.rows_for_request("req_same")
    assert sorted(got, key=lambda r: r.id) == sorted([wanted, streamed], key=lambda r: r.id)


async def test_inserts_are_idempotent_by_row_id(ledger: LedgerStore) -> None:
    rows = [row() for _ in range(50)]
    assert await ledger.insert_rows(rows) == 50
    assert await ledger.insert_rows([*rows[:10], row()]) == 1
    assert await ledger.insert_rows([]) == 0
    assert await ledger.count_rows() == 51


async def test_large_batches_are_inserted_whole_and_idempotently(ledger: LedgerStore) -> None:
    rows = [row() for _ in range(700)]
    assert await ledger.insert_rows(rows[:300]) == 300
    assert await ledger.insert_rows(rows) == 400
    assert await ledger.count_rows() == 700


async def test_an_id_repeated_within_a_batch_is_inserted_once(ledger: LedgerStore) -> None:
    rows = [row() for _ in range(257)]
    rows[150] = rows[3]  # in another statement or chunk of the batch
    rows[256] = rows[255]  # next to itself
    assert await ledger.insert_rows(rows) == 255
    assert await ledger.count_rows() == 255


async def test_client_text_with_nul_does_not_poison_a_batch(ledger: LedgerStore) -> None:
    # model_requested is whatever the client sent; PostgreSQL text cannot hold U+0000, and one
    # such row must not fail the whole batch (it would spill and fail every replay after).
    rows = [dataclasses.replace(row(request_id="req_nul"), model_requested="gpt\x00evil"), row()]
    assert await ledger.insert_rows(rows) == 2
    (got,) = await ledger.rows_for_request("req_nul")
    assert got.model_requested is not None and got.model_requested.startswith("gpt")


async def test_a_repeated_request_id_does_not_hide_rows(ledger: LedgerStore) -> None:
    await ledger.insert_rows([row(request_id="req_dup"), row(request_id="req_dup")])
    assert len(await ledger.rows_for_request("req_dup")) == 2


async def test_count_since(ledger: LedgerStore) -> None:
    day = datetime(2031, 5, 6, tzinfo=UTC)
    await ledger.insert_rows([row(at=day), row(at=day + timedelta(days=1))])
    assert await ledger.count_rows(since=day + timedelta(hours=1)) == 1


async def test_usage_groups_by_key_model_and_day(ledger: LedgerStore) -> None:
    d1 = datetime(2031, 5, 6, 23, 59, 59, tzinfo=UTC)
    d2 = datetime(2031, 5, 7, 0, 0, 1, tzinfo=UTC)
    await ledger.insert_rows(
        [
            row("a", model="m1", at=d1, cost=0.5),
            row("a", model="m2", at=d2, cost=0.25, outcome="partial"),
            row("b", model="m1", at=d2, cost=1.0, status=502, outcome="error"),
            row(None, model="m1", at=d2, cost=0.0, status=401, outcome="error"),
        ]
    )
    by_key = {g.group: g for g in await ledger.usage_groups("key")}
    assert set(by_key) == {"a", "b", "(none)"}
    assert by_key["a"].requests == 2 and by_key["a"].errors == 1
    assert by_key["a"].cost_usd == pytest.approx(0.75)
    assert by_key["a"].input_tokens == 200 and by_key["a"].cache_write_tokens == 6
    by_model = {g.group: g.requests for g in await ledger.usage_groups("model")}
    assert by_model == {"m1": 3, "m2": 1}
    by_day = [(g.group, g.requests) for g in await ledger.usage_groups("day")]
    assert by_day == [("2031-05-06", 1), ("2031-05-07", 3)]
    since = await ledger.usage_groups("key", since=d2, key_name="a")
    assert [(g.group, g.requests) for g in since] == [("a", 1)]
    until = await ledger.usage_groups("day", until=d2)
    assert [(g.group, g.requests) for g in until] == [("2031-05-06", 1)]


async def test_usage_groups_by_end_user_and_tag_with_filters(ledger: LedgerStore) -> None:
    def tagged(user: str | None, tags: dict[str, str] | None, cost: float) -> LedgerRow:
        return dataclasses.replace(row(cost=cost), end_user=user, tags=tags)

    await ledger.insert_rows(
        [
            tagged("u1", {"workflow": "wf_1", "team": "cs"}, 1.0),
            tagged("u1", {"workflow": "wf_2", "team": "cs"}, 2.0),
            tagged("u2", {"workflow": "wf_1", "team": "ops"}, 4.0),
            tagged(None, None, 8.0),
        ]
    )
    by_user = {g.group: g.cost_usd for g in await ledger.usage_groups("user")}
    assert by_user == pytest.approx({"u1": 3.0, "u2": 4.0, "(none)": 8.0})
    by_workflow = await ledger.usage_groups("tag", tag_key="workflow")
    assert {g.group: g.requests for g in by_workflow} == {"wf_1": 2, "wf_2": 1, "(none)": 1}
    cs_only = UsageFilter(tag=("team", "cs"))
    cs = await ledger.usage_groups("tag", where=cs_only, tag_key="workflow")
    assert {g.group: g.cost_usd for g in cs} == pytest.approx({"wf_1": 1.0, "wf_2": 2.0})
    u1_by_team = await ledger.usage_groups("tag", where=UsageFilter(end_user="u1"), tag_key="team")
    assert [(g.group, g.requests) for g in u1_by_team] == [("cs", 2)]
    # A tag filter matches the whole value, not a prefix or another key's value.
    assert await ledger.usage_groups("key", where=UsageFilter(tag=("team", "c"))) == []
    assert await ledger.usage_groups("key", where=UsageFilter(tag=("workflow", "cs"))) == []
    both = UsageFilter(key_name="team-a", end_user="u2", tag=("workflow", "wf_1"))
    assert [(g.group, g.cost_usd) for g in await ledger.usage_groups("key", where=both)] == [
        ("team-a", 4.0)
    ]


async def test_recent_rows_of_an_end_user_or_a_tag(ledger: LedgerStore) -> None:
    base = datetime(2031, 5, 6, tzinfo=UTC)
    rows = [
        dataclasses.replace(
            row("a" if i % 2 else "b", at=base + timedelta(seconds=i)),
            end_user=f"u{i % 3}",
            tags={"team": "cs" if i < 4 else "ops"},
        )
        for i in range(8)
    ]
    await ledger.insert_rows(rows)
    u1 = await ledger.recent_rows(10, where=UsageFilter(end_user="u1"))
    assert [r.created_at.second for r in u1] == [7, 4, 1]
    cs_a = await ledger.recent_rows(10, where=UsageFilter(key_name="a", tag=("team", "cs")))
    assert [r.created_at.second for r in cs_a] == [3, 1]
    assert all(r.tags == {"team": "cs"} for r in cs_a)
    assert len(await ledger.recent_rows(2, where=UsageFilter(tag=("team", "ops")))) == 2


async def test_recent_rows(ledger: LedgerStore) -> None:
    base = datetime(2031, 5, 6, tzinfo=UTC)
    await ledger.insert_rows(
        [row("a" if i % 2 else "b", at=base + timedelta(seconds=i)) for i in range(6)]
    )
    recent = await ledger.recent_rows(3)
    assert [r.created_at for r in recent] == [base + timedelta(seconds=s) for s in (5, 4, 3)]
    assert {r.key_name for r in await ledger.recent_rows(10, key_name="a")} == {"a"}


async def test_top_up_credits_the_key_and_bumps_the_version(
    ledger: LedgerStore, key_store_url: str
) -> None:
    async with await open_store(key_store_url) as keys:
        await keys.create_key(key_spec("prepaid"))
        before = await keys.keys_version()
        entry = await ledger.top_up("prepaid", 10.5, "topup", "invoice 42")
        assert entry is not None and entry.amount_usd == 10.5 and entry.note == "invoice 42"
        await ledger.top_up("prepaid", 2.25, "topup")
        record = await keys.get_key_by_name("prepaid")
        assert record is not None and record.balance_usd == pytest.approx(12.75)
        assert await keys.keys_version() > before
        entries = await ledger.balance_entries("prepaid")
        assert [e.amount_usd for e in entries] == [10.5, 2.25]
        assert entries[0].created_at.tzinfo is not None
        assert await ledger.top_up("nobody", 1.0, "topup") is None
        await keys.revoke_key("prepaid")
        assert await ledger.top_up("prepaid", 1.0, "topup") is None


def ask(key: str = "k", amount: float = 1.0, cap: float | None = 10.0, **kw: object) -> ReserveAsk:
    fields: dict[str, object] = {"month": MONTH, "credit_usd": None, "ttl_seconds": 900.0, **kw}
    return ReserveAsk(key_name=key, amount_usd=amount, monthly_cap_usd=cap, **fields)  # type: ignore[arg-type]


async def test_reserve_within_cap_then_refuse(ledger: LedgerStore) -> None:
    for expected in (4.0, 8.0):
        got = await ledger.try_reserve(ask(amount=4.0))
        assert got is not None and got.reserved_usd == pytest.approx(expected)
    assert await ledger.try_reserve(ask(amount=4.0)) is None
    assert await ledger.try_reserve(ask(amount=2.0)) is not None


async def test_spend_releases_reservations_and_counts_against_the_cap(ledger: LedgerStore) -> None:
    assert await ledger.try_reserve(ask(amount=6.0)) is not None
    await ledger.apply_spend(
        MONTH, [SpendDelta("k", released_usd=6.0, spent_usd=5.0, balance_spent_usd=0.0)]
    )
    [counters] = await ledger.load_budgets(MONTH)
    assert counters.reserved_usd == pytest.approx(0.0)
    assert counters.month_spent_usd == pytest.approx(5.0)
    assert await ledger.try_reserve(ask(amount=5.5)) is None
    assert await ledger.try_reserve(ask(amount=5.0)) is not None


async def test_prepaid_credit_limits_reservations(ledger: LedgerStore) -> None:
    await ledger.apply_spend(MONTH, [SpendDelta("p", 0.0, 3.0, 3.0)])
    assert await ledger.try_reserve(ask("p", amount=2.0, cap=None, credit_usd=5.0)) is not None
    assert await ledger.try_reserve(ask("p", amount=0.5, cap=None, credit_usd=5.0)) is None
    assert await ledger.try_reserve(ask("p", amount=0.5, cap=None, credit_usd=6.0)) is not None


async def test_a_new_month_starts_from_zero(ledger: LedgerStore) -> None:
    await ledger.apply_spend(MONTH, [SpendDelta("k", 0.0, 9.5, 9.5)])
    assert await ledger.try_reserve(ask(amount=1.0)) is None
    got = await ledger.try_reserve(ask(amount=1.0, month="2031-06"))
    assert got is not None and got.month == "2031-06" and got.month_spent_usd == 0.0
    assert got.balance_spent_usd == pytest.approx(9.5)
    [counters] = await ledger.load_budgets("2031-07")
    assert counters.month_spent_usd == 0.0


async def test_stale_reservations_are_released(ledger: LedgerStore) -> None:
    assert await ledger.try_reserve(ask(amount=9.0)) is not None
    await asyncio.sleep(0.3)  # the reservation grows older than the next ask's 0.1 s TTL
    got = await ledger.try_reserve(ask(amount=9.0, ttl_seconds=0.1))
    assert got is not None and got.reserved_usd == pytest.approx(9.0)


async def test_concurrent_reservations_never_pass_the_cap(ledger: LedgerStore) -> None:
    results = await asyncio.gather(*(ledger.try_reserve(ask(amount=1.0)) for _ in range(40)))
    assert sum(r is not None for r in results) == 10
    [counters] = await ledger.load_budgets(MONTH)
    assert counters.reserved_usd == pytest.approx(10.0)


async def test_reservations_from_two_stores_share_the_cap(
    ledger: LedgerStore, key_store_url: str
) -> None:
    other = create_ledger_store(key_store_url)
    await other.open()
    try:
        results = await asyncio.gather(
            *(s.try_reserve(ask(amount=1.0)) for s in [ledger, other] * 15)
        )
    finally:
        await other.close()
    assert sum(r is not None for r in results) == 10


async def test_one_keys_budget_counters(ledger: LedgerStore) -> None:
    assert await ledger.budget_counters("k", MONTH) is None
    await ledger.apply_spend(MONTH, [SpendDelta("k", 0.0, 2.5, 1.5)])
    assert await ledger.try_reserve(ask(amount=4.0)) is not None
    counters = await ledger.budget_counters("k", MONTH)
    assert counters is not None and counters.key_name == "k"
    assert counters.month_spent_usd == pytest.approx(2.5)
    assert counters.balance_spent_usd == pytest.approx(1.5)
    assert counters.reserved_usd == pytest.approx(4.0)
    later = await ledger.budget_counters("k", "2031-06")
    assert later is not None and later.month_spent_usd == 0.0 and later.reserved_usd == 4.0


@pytest.mark.parametrize(
    "poison",
    [
        {"input_tokens": 2**63},  # beyond a 64-bit integer: refused by the driver
        {"route": None},  # a NOT NULL column: refused by the database
    ],
)
async def test_a_row_the_database_rejects_is_a_data_error(
    ledger: LedgerStore, poison: dict[str, object]
) -> None:
    bad = dataclasses.replace(row(), **poison)  # type: ignore[arg-type]
    with pytest.raises(StoreDataError):
        await ledger.insert_rows([row(), bad])


async def test_recent_rows_by_page_model_and_status(ledger: LedgerStore) -> None:
    base = datetime(2031, 5, 6, tzinfo=UTC)
    await ledger.insert_rows(
        [
            row(
                model="mock-gpt" if i % 2 else "mock-claude",
                status=200 if i % 3 else 502,
                at=base + timedelta(seconds=i),
            )
            for i in range(9)
        ]
    )
    pages = [await ledger.recent_rows(4, offset=offset) for offset in (0, 4, 8)]
    assert [[r.created_at.second for r in page] for page in pages] == [
        [8, 7, 6, 5],
        [4, 3, 2, 1],
        [0],
    ]
    gpt = await ledger.recent_rows(10, where=UsageFilter(model="mock-gpt"))
    assert [r.created_at.second for r in gpt] == [7, 5, 3, 1]
    failed = await ledger.recent_rows(10, where=UsageFilter(status=502))
    assert [r.created_at.second for r in failed] == [6, 3, 0]
    both = UsageFilter(model="mock-gpt", status=502)
    assert [r.created_at.second for r in await ledger.recent_rows(10, where=both)] == [3]
    assert await ledger.recent_rows(10, where=both, offset=1) == []
