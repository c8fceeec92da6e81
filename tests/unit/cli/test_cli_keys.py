from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaygate.auth.keys import hash_key
from relaygate.cli.keys import add_keys_parser
from relaygate.store import create_key_store


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="relaygate")
    add_keys_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


class Cli:
    def __init__(self, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.db_url = db_url
        self.capsys = capsys

    def run(self, *argv: str, db: bool = True) -> tuple[int, str, str]:
        extra = ["--database-url", self.db_url] if db else []
        args = parse(["keys", *argv, *extra])
        code: int = args.handler(args)
        out, err = self.capsys.readouterr()
        return code, out, err

    def listing(self) -> list[dict[str, Any]]:
        code, out, _ = self.run("list", "--json")
        assert code == 0
        rows: list[dict[str, Any]] = orjson.loads(out)
        return rows


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'relaygate.db'}", capsys)


def test_create_prints_the_key_once_and_list_never_shows_it(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    code, out, err = cli.run("create", "--name", "support-bot")
    assert code == 0
    key = out.strip()
    assert re.fullmatch(r"rg-[A-Za-z0-9_-]{40}", key)
    assert "only time the key is shown" in err

    rows = cli.listing()
    assert [r["name"] for r in rows] == ["support-bot"]
    assert rows[0]["key_prefix"] == key[:8]
    assert rows[0]["status"] == "active"
    assert "key_hash" not in rows[0]

    code, table, _ = cli.run("list")
    assert code == 0
    assert "support-bot" in table
    assert key[:8] in table
    assert key not in table
    assert key not in orjson.dumps(rows).decode()


def test_create_with_every_option(cli: Cli) -> None:
    code, out, _ = cli.run(
        "create",
        "--name", "full",
        "--models", "mock-gpt, mock-claude",
        "--owner", "alice",
        "--team", "cs",
        "--priority", "5",
        "--expires-days", "30",
        "--rps", "2.5",
        "--burst", "10",
        "--rpm", "100",
        "--tpm", "100000",
        "--max-concurrent", "4",
        "--monthly-budget-usd", "50",
        "--balance-usd", "0",
        "--json",
    )  # fmt: skip
    assert code == 0
    created = orjson.loads(out)
    assert created["key"].startswith("rg-")
    assert created["allowed_models"] == ["mock-gpt", "mock-claude"]
    assert (created["owner"], created["team"], created["priority"]) == ("alice", "cs", 5)
    assert (created["rps"], created["burst"], created["rpm"], created["tpm"]) == (
        2.5,
        10,
        100,
        100000,
    )
    assert (created["max_concurrent"], created["monthly_budget_usd"]) == (4, 50.0)
    assert created["balance_usd"] == 0.0
    assert created["expires_at"] is not None
    [row] = cli.listing()
    assert row["expires_at"] == created["expires_at"]
    assert row["allowed_models"] == ["mock-gpt", "mock-claude"]


def test_duplicate_name_is_a_one_line_error(cli: Cli) -> None:
    assert cli.run("create", "--name", "twice")[0] == 0
    code, out, err = cli.run("create", "--name", "twice")
    assert code == 1
    assert out == ""
    assert err == "error: a key named 'twice' already exists\n"


def test_invalid_name_is_a_one_line_error(cli: Cli) -> None:
    code, _, err = cli.run("create", "--name", " spaced")
    assert code == 1
    assert err.startswith("error: name:")
    assert err.count("\n") == 1


def test_revoke(cli: Cli) -> None:
    cli.run("create", "--name", "old")
    code, out, _ = cli.run("revoke", "old")
    assert code == 0
    assert "Revoked key 'old'" in out
    [row] = cli.listing()
    assert row["status"] == "revoked"
    assert row["revoked_at"] is not None

    code, out, _ = cli.run("revoke", "old")
    assert (code, out) == (0, "Key 'old' was already revoked.\n")


def test_revoking_an_unknown_key_is_a_one_line_error(cli: Cli) -> None:
    code, _, err = cli.run("revoke", "ghost")
    assert code == 1
    assert err == "error: no key named 'ghost'\n"


def test_list_on_an_empty_store(cli: Cli) -> None:
    assert cli.listing() == []
    code, out, _ = cli.run("list")
    assert code == 0
    assert "0 key(s)" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["create", "--name", "x", "--priority", "high"],
        ["create", "--name", "x", "--expires-days", "0"],
        ["create", "--name", "x", "--rpm", "-1"],
        ["create", "--name", "x", "--models", " , "],
        ["create"],
        ["revoke"],
    ],
)
def test_malformed_arguments_are_rejected_by_argparse(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(["keys", *argv])
    assert info.value.code == 2


def test_database_url_comes_from_the_environment_through_settings(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYGATE_DATABASE_URL", cli.db_url)
    assert cli.run("create", "--name", "from-env", db=False)[0] == 0
    assert [r["name"] for r in cli.listing()] == ["from-env"]


def test_database_url_comes_from_the_config_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAYGATE_DATABASE_URL", raising=False)
    config = tmp_path / "relaygate.yaml"
    config.write_text(
        f"database_url: {cli.db_url}\n"
        "models:\n  - name: m\n    deployments:\n      - provider: mock\n"
    )
    assert cli.run("create", "--name", "from-config", "--config", str(config), db=False)[0] == 0
    assert [r["name"] for r in cli.listing()] == ["from-config"]


def test_a_bad_config_is_reported(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("models: 3\n")
    code, _, err = cli.run("list", "--config", str(config), db=False)
    assert code == 2
    assert "configuration error" in err
    assert str(config) in err


def test_an_unknown_database_scheme_is_a_one_line_error(cli: Cli) -> None:
    cli.db_url = "mysql://root:pw@localhost/x"
    code, _, err = cli.run("list")
    assert code == 1
    assert err.startswith("error: unsupported database URL scheme 'mysql'")
    assert "pw@" not in err


def test_an_unreachable_database_is_a_one_line_error(cli: Cli) -> None:
    cli.db_url = "postgresql://relay:topsecret@127.0.0.1:1/db"
    code, _, err = cli.run("list")
    assert code == 1
    assert err.startswith("error: PostgreSQL at postgresql://relay:***@127.0.0.1:1/db")
    assert "topsecret" not in err


def test_create_admin_token_prints_it_once_and_stores_its_hash(cli: Cli) -> None:
    code, out, err = cli.run("create-admin-token")
    assert code == 0
    token = out.strip()
    assert re.fullmatch(r"rgadmin-[A-Za-z0-9_-]{40}", token)
    assert "only time it is shown" in err

    async def stored() -> list[str]:
        async with create_key_store(cli.db_url) as store:
            return await store.list_admin_token_hashes()

    assert asyncio.run(stored()) == [hash_key(token)]
