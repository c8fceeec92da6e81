"""`relaygate keys update | top-up | balance`: change limits and budgets, move prepaid money."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from relaygate.accounting import FxTable, credit
from relaygate.settings import load_settings
from relaygate.store import create_key_store, create_ledger_store

EXIT_OK = 0
EXIT_USER_ERROR = 1
_NUMBER_FIELDS: dict[str, type[int] | type[float]] = {
    "priority": int,
    "rps": float,
    "burst": int,
    "rpm": int,
    "tpm": int,
    "max_concurrent": int,
    "monthly_budget_usd": float,
}


def add_manage_actions(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    add_options: Callable[[argparse.ArgumentParser], None],
    runner: Callable[[Coroutine[Any, Any, int]], int],
) -> None:
    """Add ``update``, ``top-up`` and ``balance`` to ``relaygate keys``.

    ``add_options`` adds ``--database-url``/``--config``; ``runner`` runs a command coroutine and
    turns expected failures into an exit code (both from ``relaygate.cli.keys``).
    """

    update = actions.add_parser("update", help="change a key's limits, budget, models or expiry")
    update.add_argument("name", help="name of the key")
    update.add_argument("--owner")
    update.add_argument("--team")
    update.add_argument("--models", help="allowed models a,b ('' allows every model)")
    update.add_argument("--priority", type=_number(int, allow_negative=True))
    for option in ("rps", "burst", "rpm", "tpm", "max-concurrent"):
        update.add_argument(f"--{option}", type=_limit(option))
    update.add_argument(
        "--monthly-budget-usd",
        type=_limit("monthly-budget-usd", zero=True),
        help="monthly cap in USD; 'none' removes it",
    )
    update.add_argument("--expires-days", type=_number(float), help="expire N days from now")
    state = update.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true", help="switch the key off")
    state.add_argument("--enable", action="store_true", help="switch it back on")
    add_options(update)
    update.set_defaults(handler=lambda args: runner(update_command(args)))

    top_up = actions.add_parser("top-up", help="add prepaid credit (recorded as a balance entry)")
    top_up.add_argument("name", help="name of the key")
    top_up.add_argument("amount", type=_number(float, allow_negative=True), help="amount")
    top_up.add_argument("--currency", help="currency of the amount (default USD)")
    top_up.add_argument("--note", help="why, e.g. an invoice number")
    top_up.add_argument(
        "--adjust", action="store_true", help="an adjustment (may be negative), not a top-up"
    )
    add_options(top_up)
    top_up.set_defaults(handler=lambda args: runner(top_up_command(args)))

    show = actions.add_parser("balance", help="a key's balance entries")
    show.add_argument("name", help="name of the key")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_options(show)
    show.set_defaults(handler=lambda args: runner(balance_command(args)))


async def update_command(args: argparse.Namespace) -> int:
    """Apply the given options; an unknown key is a user error (exit 1)."""
    changes = _changes(args)
    if not changes:
        return _fail("nothing to change: give at least one option (see --help)")
    async with create_key_store(_database_url(args)) as store:
        record = await store.update_key(args.name, **changes)
    if record is None:
        return _fail(f"no key named '{args.name}'")
    print(f"Updated key '{record.name}': {', '.join(sorted(changes))}.")
    return EXIT_OK


async def top_up_command(args: argparse.Namespace) -> int:
    """Add credit in USD or another configured currency, recorded as a balance entry."""
    settings = load_settings(args.config)
    fx = FxTable.from_settings(settings.accounting)
    currency = fx.check(args.currency or "USD")
    amount_usd = fx.to_usd(args.amount, currency)
    kind = "adjustment" if args.adjust else "topup"
    async with create_ledger_store(_database_url(args)) as ledger:
        try:
            entry = await credit.top_up(ledger, args.name, amount_usd, kind=kind, note=args.note)
        except credit.UnknownKeyError as exc:
            return _fail(str(exc))
    shown = f"{args.amount:,.2f} {currency}" + (
        f" (= {entry.amount_usd:,.4f} USD)" if currency != "USD" else ""
    )
    print(f"Recorded a {kind} of {shown} for key '{args.name}'.")
    return EXIT_OK


async def balance_command(args: argparse.Namespace) -> int:
    url = _database_url(args)
    async with create_key_store(url) as keys:
        record = await keys.get_key_by_name(args.name)
    if record is None:
        return _fail(f"no key named '{args.name}'")
    async with create_ledger_store(url) as ledger:
        entries = await ledger.balance_entries(args.name)
    if args.json:
        rows = [
            {
                "amount_usd": e.amount_usd,
                "kind": e.kind,
                "note": e.note,
                "created_at": e.created_at.astimezone(UTC).isoformat(),
            }
            for e in entries
        ]
        print(orjson.dumps({"credit_usd": record.balance_usd, "entries": rows}).decode())
        return EXIT_OK
    table = Table(title=f"Balance entries of '{args.name}' (credit {record.balance_usd} USD)")
    for column in ("date", "kind", "amount (USD)", "note"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            f"{e.created_at.astimezone(UTC):%Y-%m-%d %H:%M}",
            e.kind,
            f"{e.amount_usd:,.4f}",
            e.note or "",
        )
    Console().print(table)
    return EXIT_OK


def _changes(args: argparse.Namespace) -> dict[str, object]:
    changes: dict[str, object] = {}
    for field in ("owner", "team"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    if args.models is not None:
        changes["allowed_models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    for field in _NUMBER_FIELDS:
        value = getattr(args, field)
        if value is not None:
            changes[field] = None if value == "none" else value
    if args.expires_days is not None:
        changes["expires_at"] = datetime.now(UTC) + timedelta(days=args.expires_days)
    if args.disable or args.enable:
        changes["disabled"] = bool(args.disable)
    return changes


def _number(
    kind: type[int] | type[float], *, allow_negative: bool = False
) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if not allow_negative and value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
        return value

    return parse


def _limit(option: str, *, zero: bool = False) -> Callable[[str], int | float | str]:
    kind = _NUMBER_FIELDS[option.replace("-", "_")]

    def parse(text: str) -> int | float | str:
        if text.lower() == "none":
            return "none"
        value = _number(kind, allow_negative=True)(text)
        if value < 0 or (value == 0 and not zero):
            bound = "0 or more" if zero else "a number above 0"
            raise argparse.ArgumentTypeError(f"expected {bound} (or 'none'), got {text}")
        return value

    return parse


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    return load_settings(args.config).resolved_database_url


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR
