from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.store import StoreError, StoreUnavailableError, create_key_store, open_store
from relaygate.store.postgres import PostgresKeyStore
from relaygate.store.sqlite import SqliteKeyStore
from relaygate.store.urls import redact_url, scrub, sqlite_path, url_scheme


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///relaygate.db", "relaygate.db"),
        ("sqlite:///data/relaygate.db", "data/relaygate.db"),
        ("sqlite:////var/lib/relaygate/relaygate.db", "/var/lib/relaygate/relaygate.db"),
        ("SQLITE:///x.db", "x.db"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    assert sqlite_path(url) == path
    assert isinstance(create_key_store(url), SqliteKeyStore)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db"])
def test_malformed_sqlite_urls_say_what_they_should_look_like(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///relative/path\.db"):
        create_key_store(url)


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "postgres://u:p@h:5432/db", "PostgreSQL://h/db"]
)
def test_postgres_urls(url: str) -> None:
    assert isinstance(create_key_store(url), PostgresKeyStore)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://root:hunter2@db/x", "'mysql'"),
        ("redis://127.0.0.1:6379/0", "'redis'"),
        ("/just/a/path.db", "(none)"),
    ],
)
def test_unknown_schemes_are_named_without_the_password(url: str, shown: str) -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme") as info:
        create_key_store(url)
    assert shown in str(info.value)
    assert "hunter2" not in str(info.value)


def test_redaction() -> None:
    assert redact_url("postgresql://u:s3cret@h:5432/db?x=1") == "postgresql://u:***@h:5432/db?x=1"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql://:pw@h/db") == "postgresql://:***@h/db"
    assert redact_url("postgresql://u:p@[::1/db") == "postgresql://(redacted)"
    assert url_scheme("no scheme") == ""
    assert scrub("auth failed for s3cret", "postgresql://u:s3cret@h/db") == "auth failed for ***"
    assert scrub("nothing", "postgresql://u@h/db") == "nothing"


async def test_unreachable_postgres_is_unavailable_and_never_shows_the_password() -> None:
    # Port 1 on localhost refuses connections at once.
    with pytest.raises(StoreUnavailableError) as info:
        await open_store("postgresql://relay:topsecret@127.0.0.1:1/relaygate")
    message = str(info.value)
    assert "topsecret" not in message
    assert "relay:***@127.0.0.1:1" in message
    assert info.value.__cause__ is None


async def test_an_invalid_postgres_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="URL is invalid") as info:
        await open_store("postgresql://relay:topsecret@127.0.0.1:notaport/db")
    assert "topsecret" not in str(info.value)


async def test_sqlite_under_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailableError, match="cannot create the directory"):
        await open_store(f"sqlite:///{blocker / 'sub' / 'relaygate.db'}")


async def test_sqlite_creates_missing_parent_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "relaygate.db"
    store = await open_store(f"sqlite:///{target}")
    await store.close()
    assert target.is_file()
