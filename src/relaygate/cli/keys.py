"""`relaygate keys create | list | revoke`: argument parsing and printing around the key store."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from relaygate.accounting import credit
from relaygate.auth.keys import generate_admin_token, hash_key, key_status, new_api_key
from relaygate.cli.keys_manage import add_manage_actions
from relaygate.settings import ConfigError, load_settings
from relaygate.store import (
    KeyRecord,
    KeySpec,
    StoreError,
    create_key_store,
    create_ledger_store,
)

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_CONFIG_ERROR = 2


def add_keys_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys`` and its subcommands; each sets ``handler(args) -> exit code``."""
    keys = subparsers.add_parser("keys", help="create, list and revoke gateway API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="unique name of the key")
    create.add_argument("--models", type=_model_list, default=(), help="allowed models: a,b")
    create.add_argument("--owner", help="who the key belongs to")
    create.add_argument("--team", help="team the key is billed to")
    create.add_argument("--priority", type=int, default=0, help="admission class, higher first")
    create.add_argument("--expires-days", type=_positive(float), help="days until it expires")
    create.add_argument("--rps", type=_positive(float), help="requests per second")
    create.add_argument("--burst", type=_positive(int), help="token-bucket burst size")
    create.add_argument("--rpm", type=_positive(int), help="requests per minute")
    create.add_argument("--tpm", type=_positive(int), help="tokens per minute")
    create.add_argument("--max-concurrent", type=_positive(int), help="requests in flight")
    create.add_argument("--monthly-budget-usd", type=_positive(float), help="monthly cap in USD")
    create.add_argument("--balance-usd", type=_non_negative(float), help="prepaid balance in USD")
    create.add_argument("--json", action="store_true", help="print the new key as JSON")
    _add_store_options(create)
    create.set_defaults(handler=run_create)

    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_store_options(listing)
    listing.set_defaults(handler=run_list)

    revoke = actions.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("name", help="name of the key")
    _add_store_options(revoke)
    revoke.set_defaults(handler=run_revoke)

    admin = actions.add_parser(
        "create-admin-token", help="create a token for the /admin API and print it once"
    )
    _add_store_options(admin)
    admin.set_defaults(handler=run_create_admin_token)
    add_manage_actions(actions, _add_store_options, _run)


def run_create(args: argparse.Namespace) -> int:
    return _run(create_key_command(args))


def run_list(args: argparse.Namespace) -> int:
    return _run(list_keys_command(args))


def run_revoke(args: argparse.Namespace) -> int:
    return _run(revoke_key_command(args))


def run_create_admin_token(args: argparse.Namespace) -> int:
    return _run(create_admin_token_command(args))


async def create_key_command(args: argparse.Namespace) -> int:
    """Create the key, print it once on stdout and the warning on stderr."""
    material = new_api_key()
    expires_at = None
    if args.expires_days is not None:
        expires_at = datetime.now(UTC) + timedelta(days=args.expires_days)
    spec = KeySpec(
        name=args.name,
        key_hash=material.key_hash,
        key_prefix=material.key_prefix,
        owner=args.owner,
        team=args.team,
        allowed_models=args.models,
        priority=args.priority,
        rps=args.rps,
        burst=args.burst,
        rpm=args.rpm,
        tpm=args.tpm,
        max_concurrent=args.max_concurrent,
        monthly_budget_usd=args.monthly_budget_usd,
        balance_usd=args.balance_usd,
        expires_at=expires_at,
    )
    url = _database_url(args)
    async with create_key_store(url) as store, create_ledger_store(url) as ledger:
        # An initial balance is recorded as the key's first balance entry.
        record = await credit.create_key(store, ledger, spec)
    if args.json:
        print(orjson.dumps({"key": material.raw_key, **_public_fields(record)}).decode())
    else:
        print(material.raw_key)
    print(
        f"Created key '{record.name}'. This is the only time the key is shown: store it now.",
        file=sys.stderr,
    )
    return EXIT_OK


async def list_keys_command(args: argparse.Namespace) -> int:
    """Print every key's name, prefix, owner, models, status and dates; never a hash."""
    async with create_key_store(_database_url(args)) as store:
        records = await store.list_keys()
    now = datetime.now(UTC)
    if args.json:
        rows = [{**_public_fields(r), "status": key_status(r, now)} for r in records]
        print(orjson.dumps(rows).decode())
        return EXIT_OK
    Console().print(_table(records, now))
    return EXIT_OK


async def revoke_key_command(args: argparse.Namespace) -> int:
    """Revoke by name; unknown names are a user error (exit 1)."""
    async with create_key_store(_database_url(args)) as store:
        record = await store.get_key_by_name(args.name)
        if record is None:
            return _fail(f"no key named '{args.name}'")
        if record.revoked:
            print(f"Key '{args.name}' was already revoked.")
            return EXIT_OK
        await store.revoke_key(args.name)
    print(
        f"Revoked key '{args.name}'. Running gateways refuse it after their next key refresh "
        "(key_cache_refresh_seconds, 5 s by default)."
    )
    return EXIT_OK


async def create_admin_token_command(args: argparse.Namespace) -> int:
    """Create an admin token (e.g. when keys were made before the first start); print it once."""
    token = generate_admin_token()
    async with create_key_store(_database_url(args)) as store:
        await store.create_admin_token(hash_key(token))
    print(token)
    print(
        "Created an admin token. This is the only time it is shown: store it now.", file=sys.stderr
    )
    return EXIT_OK


def _table(records: list[KeyRecord], now: datetime) -> Table:
    table = Table(
        title=f"{len(records)} key(s)", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    # Names are copied into commands: on a narrow terminal fold them, never cut them short.
    table.add_column("name", overflow="fold", min_width=12)
    table.add_column("prefix", no_wrap=True)
    table.add_column("owner", min_width=8)
    table.add_column("models", min_width=8)
    for column in ("status", "expires", "created"):
        table.add_column(column, no_wrap=True)
    for r in records:
        table.add_row(
            r.name,
            r.key_prefix,
            " / ".join(filter(None, (r.owner, r.team))),
            ", ".join(r.allowed_models) or "(all)",
            key_status(r, now),
            _date(r.expires_at),
            _date(r.created_at),
        )
    return table


def _public_fields(record: KeyRecord) -> dict[str, Any]:
    fields = {
        name: getattr(record, name) for name in record.__dataclass_fields__ if name != "key_hash"
    }
    fields["allowed_models"] = list(record.allowed_models)
    for name in ("expires_at", "created_at", "revoked_at"):
        value = fields[name]
        fields[name] = value.astimezone(UTC).isoformat() if value else None
    return fields


def _date(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else ""


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", help="sqlite:///path or postgresql://... (default: from the config)"
    )
    parser.add_argument("--config", type=Path, help="YAML config file to read database_url from")


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    return load_settings(args.config).resolved_database_url


def _run(command: Coroutine[Any, Any, int]) -> int:
    """Run a handler; expected failures become one line on stderr and a non-zero exit code."""
    try:
        return asyncio.run(command)
    except ConfigError as exc:
        print(f"relaygate keys: configuration error\n{exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (StoreError, ValueError) as exc:
        return _fail(str(exc))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def _model_list(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    if not models:
        raise argparse.ArgumentTypeError("expected model names separated by commas")
    return models


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
        return value

    return parse


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = _number(kind, text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
        return value

    return parse


def _number(kind: type[int] | type[float], text: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
