"""`relaygate usage report | bill` and `relaygate keys update | top-up | balance`."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.cli.main import build_parser
from relaygate.store import LedgerRow, create_ledger_store


class Cli:
    def __init__(self, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.db_url = db_url
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        args = build_parser().parse_args([*argv, "--database-url", self.db_url])
        code: int = args.handler(args)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self.run(*argv, "--json")
        assert code == 0, err
        return orjson.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'relaygate.db'}", capsys)


def add_rows(db_url: str, *rows: tuple[str, str, float]) -> None:
    async def insert() -> None:
        async with create_ledger_store(db_url) as ledger:
            await ledger.insert_rows(
                [
                    LedgerRow(
                        id=uuid.uuid4().hex,
                        request_id="r",
                        created_at=datetime.now(UTC),
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
                        input_tokens=100,
                        output_tokens=10,
                        cache_read_tokens=0,
                        cache_write_tokens=0,
                        cost_usd=cost,
                        latency_ms=1,
                        upstream_ms=1,
                        ttft_ms=None,
                        cache_hit=False,
                    )
                    for key, model, cost in rows
                ]
            )

    asyncio.run(insert())


def test_report_by_model_in_cny(cli: Cli) -> None:
    add_rows(cli.db_url, ("a", "m1", 1.0), ("b", "m1", 2.0), ("a", "m2", 0.5))
    report = cli.json("usage", "report", "--by", "model", "--currency", "CNY")
    assert report["currency"] == "CNY"
    assert [(r["group"], r["requests"]) for r in report["rows"]] == [("m1", 2), ("m2", 1)]
    assert report["total"]["cost"] == pytest.approx(3.5 * 7.3)
    keyed = cli.json("usage", "report", "--key", "a", "--since", "1d")
    assert keyed["total"]["requests"] == 2


def test_report_table(cli: Cli) -> None:
    add_rows(cli.db_url, ("a", "m1", 1.25))
    code, out, _ = cli.run("usage", "report", "--by", "day")
    assert code == 0
    assert "Usage by day" in out and "1.2500" in out and "total" in out


def test_bill_with_budgets_and_projection(cli: Cli) -> None:
    code, _, err = cli.run("keys", "create", "--name", "a", "--monthly-budget-usd", "10")
    assert code == 0, err
    code, _, err = cli.run("keys", "create", "--name", "b", "--balance-usd", "5")
    assert code == 0, err
    add_rows(cli.db_url, ("a", "m", 2.0))
    bill = cli.json("usage", "bill")
    lines = {line["key"]: line for line in bill["keys"]}
    assert lines["a"]["month_to_date"] == pytest.approx(2.0)
    assert lines["a"]["projected"] >= 2.0
    assert lines["a"]["budget_left"] == pytest.approx(8.0)
    assert lines["b"]["balance_left"] == pytest.approx(5.0)
    code, out, _ = cli.run("usage", "bill", "--currency", "CNY")
    assert code == 0 and "in CNY" in out and "projected" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["usage", "report", "--currency", "EUR"], "currency: unknown currency 'EUR'"),
        (["usage", "report", "--since", "yesterday"], "--since: expected a date"),
    ],
)
def test_report_errors_name_the_field(cli: Cli, argv: list[str], message: str) -> None:
    code, _, err = cli.run(*argv)
    assert code == 1 and message in err


def test_bad_month_and_grouping_are_argument_errors(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["usage", "bill", "--month", "2031-13"], ["usage", "report", "--by", "week"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.run(*argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "--month" in err or "--by" in err


def test_report_by_tag_filtered_by_user_and_tag(cli: Cli) -> None:
    add_rows(cli.db_url, ("a", "m1", 1.0))

    async def tagged() -> None:
        async with create_ledger_store(cli.db_url) as ledger:
            base = (await ledger.recent_rows(1))[0]
            await ledger.insert_rows(
                [
                    dataclasses.replace(
                        base, id=uuid.uuid4().hex, end_user=user, tags=tags, cost_usd=cost
                    )
                    for user, tags, cost in (
                        ("u1", {"workflow": "wf_1", "team": "cs"}, 2.0),
                        ("u1", {"workflow": "wf_2", "team": "ops"}, 4.0),
                        ("u2", {"workflow": "wf_1", "team": "cs"}, 8.0),
                    )
                ]
            )

    asyncio.run(tagged())
    report = cli.json("usage", "report", "--by", "tag:workflow", "--tag", "team=cs")
    assert [(r["group"], r["cost"]) for r in report["rows"]] == [("wf_1", 10.0)]
    assert report["by"] == "tag:workflow" and report["filter"] == {"tag": "team=cs"}
    by_user = cli.json("usage", "report", "--by", "user")
    assert {r["group"]: r["requests"] for r in by_user["rows"]} == {"(none)": 1, "u1": 2, "u2": 1}
    code, out, _ = cli.run("usage", "report", "--by", "tag:team", "--user", "u1")
    assert code == 0 and "Usage by tag:team" in out and "ops" in out


def test_bad_tag_filters_and_groupings_are_argument_errors(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, option in (
        (["usage", "report", "--by", "tag:"], "--by"),
        (["usage", "report", "--by", "tag:a.b"], "--by"),
        (["usage", "report", "--tag", "team"], "--tag"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.run(*argv)
        assert exit_info.value.code == 2
        assert option in capsys.readouterr().err


def test_update_budget_and_top_up(cli: Cli) -> None:
    assert cli.run("keys", "create", "--name", "a")[0] == 0
    code, out, err = cli.run(
        "keys", "update", "a", "--monthly-budget-usd", "12.5", "--priority", "3"
    )
    assert code == 0, err
    assert "monthly_budget_usd" in out
    listing = {k["name"]: k for k in cli.json("keys", "list")}
    assert listing["a"]["monthly_budget_usd"] == 12.5 and listing["a"]["priority"] == 3
    assert cli.run("keys", "update", "a", "--monthly-budget-usd", "none")[0] == 0
    assert {k["name"]: k for k in cli.json("keys", "list")}["a"]["monthly_budget_usd"] is None

    code, out, err = cli.run("keys", "top-up", "a", "73", "--currency", "CNY", "--note", "inv")
    assert code == 0, err
    assert "73.00 CNY" in out and "10.0000 USD" in out
    balance = cli.json("keys", "balance", "a")
    assert balance["credit_usd"] == pytest.approx(10.0)
    assert [(e["kind"], e["note"]) for e in balance["entries"]] == [("topup", "inv")]


def test_an_initial_balance_is_recorded_as_an_entry(cli: Cli) -> None:
    assert cli.run("keys", "create", "--name", "p", "--balance-usd", "7")[0] == 0
    balance = cli.json("keys", "balance", "p")
    assert balance["credit_usd"] == 7.0
    assert [(e["kind"], e["amount_usd"]) for e in balance["entries"]] == [("initial", 7.0)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "update", "nobody", "--monthly-budget-usd", "5"], "no key named 'nobody'"),
        (["keys", "top-up", "nobody", "5"], "no key named 'nobody'"),
        (["keys", "top-up", "a", "-5"], "amount: expected an amount above 0"),
        (["keys", "top-up", "a", "0"], "amount: expected an amount above 0"),
        (["keys", "top-up", "a", "5", "--currency", "EUR"], "currency: unknown currency"),
        (["keys", "update", "a"], "nothing to change"),
        (["keys", "balance", "nobody"], "no key named 'nobody'"),
    ],
)
def test_key_management_errors(cli: Cli, argv: list[str], message: str) -> None:
    assert cli.run("keys", "create", "--name", "a")[0] == 0
    code, _, err = cli.run(*argv)
    assert code == 1, err
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "update", "a", "--monthly-budget-usd", "-1"],
        ["keys", "update", "a", "--monthly-budget-usd", "lots"],
        ["keys", "update", "a", "--rps", "0"],
        ["keys", "top-up", "a", "ten"],
        ["keys", "top-up", "a", "nan"],
    ],
)
def test_non_numeric_or_negative_values_are_argument_errors(
    cli: Cli, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.run(*argv)
    assert exit_info.value.code == 2
    assert "argument" in capsys.readouterr().err
