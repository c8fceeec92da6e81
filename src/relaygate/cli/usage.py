"""`relaygate usage report | bill`: usage totals and the month-to-date bill, in USD or CNY."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from relaygate.accounting import (
    Bill,
    FxTable,
    UsageReport,
    check_group_by,
    month_bill,
    parse_month,
    usage_report,
)
from relaygate.accounting.attribution import parse_tag_filter
from relaygate.accounting.reports import parse_time
from relaygate.settings import ConfigError, Settings, load_settings
from relaygate.store import StoreError, create_key_store, create_ledger_store

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_CONFIG_ERROR = 2


def add_usage_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``usage`` with ``report`` and ``bill``; each sets ``handler(args) -> exit code``."""
    usage = subparsers.add_parser("usage", help="usage reports and monthly bills")
    actions = usage.add_subparsers(dest="usage_command", required=True, metavar="ACTION")

    report = actions.add_parser("report", help="totals by key, model, day, end user or tag")
    report.add_argument(
        "--by", type=_group_by, default="key", help="key, model, day, user or tag:<key>"
    )
    report.add_argument("--since", help="2031-05-01, an ISO time, or 7d / 24h / 30m ago")
    report.add_argument("--until", help="same forms as --since (exclusive)")
    report.add_argument("--key", help="only this key")
    report.add_argument("--user", help="only this end user")
    report.add_argument("--tag", type=_tag, help="only rows tagged key=value")
    _add_common(report)
    report.set_defaults(handler=run_report)

    bill = actions.add_parser("bill", help="month-to-date bill per key with a projection")
    bill.add_argument("--month", type=_month, help="YYYY-MM (default: this month)")
    _add_common(bill)
    bill.set_defaults(handler=run_bill)


def run_report(args: argparse.Namespace) -> int:
    return _run(report_command(args))


def run_bill(args: argparse.Namespace) -> int:
    return _run(bill_command(args))


async def report_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    fx = FxTable.from_settings(settings.accounting)
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    currency = fx.check(args.currency)
    async with create_ledger_store(_database_url(args, settings)) as store:
        report = await usage_report(
            store,
            fx,
            args.by,
            since=since,
            until=until,
            currency=currency,
            key_name=args.key,
            end_user=args.user,
            tag=args.tag,
        )
    if args.json:
        print(orjson.dumps(report.to_json()).decode())
    else:
        Console().print(report_table(report))
    return EXIT_OK


async def bill_command(args: argparse.Namespace) -> int:
    settings = _settings(args)
    fx = FxTable.from_settings(settings.accounting)
    currency = fx.check(args.currency)
    url = _database_url(args, settings)
    async with create_key_store(url) as keys:
        records = await keys.list_keys()
    async with create_ledger_store(url) as store:
        result = await month_bill(store, records, fx, currency=currency, month=args.month)
    if args.json:
        print(orjson.dumps(result.to_json()).decode())
    else:
        Console().print(bill_table(result))
    return EXIT_OK


def report_table(report: UsageReport) -> Table:
    """The report as a rich table, with a total row."""
    span = f"since {report.since:%Y-%m-%d %H:%M}" if report.since else "all time"
    table = _table(f"Usage by {report.by}, {span}, in {report.currency}")
    table.add_column(report.by, overflow="fold", min_width=10)
    for column in ("requests", "errors", "input", "output", "cache read", "cache write"):
        table.add_column(column, justify="right", overflow="fold")
    table.add_column(f"cost ({report.currency})", justify="right", overflow="fold")
    for line in (*report.lines, report.total):
        table.add_row(
            escape(line.group),
            f"{line.requests:,}",
            f"{line.errors:,}",
            f"{line.input_tokens:,}",
            f"{line.output_tokens:,}",
            f"{line.cache_read_tokens:,}",
            f"{line.cache_write_tokens:,}",
            _money(line.cost),
            style="bold" if line is report.total else None,
        )
    return table


def bill_table(bill: Bill) -> Table:
    """The bill as a rich table: spend so far, projection, budgets and balances left."""
    title = (
        f"Bill for {bill.month} in {bill.currency} "
        f"({bill.fraction_elapsed:.0%} of the month elapsed)"
    )
    table = _table(title)
    table.add_column("key (owner / team)", overflow="fold", min_width=12)
    table.add_column("requests", justify="right", overflow="fold")
    for column in ("to date", "projected", "budget", "budget left", "balance"):
        table.add_column(column, justify="right", overflow="fold")
    for line in bill.lines:
        who = " / ".join(filter(None, (line.owner, line.team)))
        table.add_row(
            escape(line.key) + (f"\n[dim]{escape(who)}[/dim]" if who else ""),
            f"{line.requests:,}",
            _money(line.month_to_date),
            _money(line.projected),
            _money(line.monthly_budget),
            _money(line.budget_left),
            _money(line.balance_left),
        )
    table.add_row(
        "total", "", _money(bill.total), _money(bill.projected_total), "", "", "", style="bold"
    )
    return table


def _table(title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    return table


def _money(amount: float | None) -> str:
    if amount is None:
        return "-"
    return f"{amount:,.4f}" if abs(amount) < 100 else f"{amount:,.2f}"


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--currency", help="USD, CNY or any code in accounting.fx")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--database-url", help="sqlite:///path or postgresql://... (default: from the config)"
    )
    parser.add_argument("--config", type=Path, help="YAML config (prices, FX, database_url)")


def _checked_text(check: Callable[[str], object], field: str) -> Callable[[str], str]:
    """An argparse type: the text itself once ``check`` accepts it (ValueError naming ``field``)."""

    def convert(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{field}: ")) from None
        return text

    return convert


_group_by = _checked_text(check_group_by, "by")
_month = _checked_text(parse_month, "month")


def _tag(text: str) -> tuple[str, str]:
    try:
        return parse_tag_filter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("tag: ")) from None


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _database_url(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.database_url) if args.database_url else settings.resolved_database_url


def _run(command: Coroutine[Any, Any, int]) -> int:
    """Run a command; expected failures become one line on stderr and a non-zero exit code."""
    try:
        return asyncio.run(command)
    except ConfigError as exc:
        print(f"relaygate usage: configuration error\n{exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
