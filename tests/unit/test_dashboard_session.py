"""The dashboard's session cookie: signed, expiring, unforgeable; CSRF tokens bound to it."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from relaygate.dashboard.session import (
    COOKIE_NAME,
    SECRET_FILE,
    SessionSigner,
    cookie_value,
    set_cookie_header,
    shared_secret,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_issued_cookie_verifies_until_it_expires() -> None:
    clock = Clock()
    signer = SessionSigner(b"k" * 32, lifetime_seconds=60, clock=clock)
    session, value = signer.issue()
    assert signer.verify(value) == session
    assert session.expires_at == int(clock.now) + 60
    clock.now += 59
    assert signer.verify(value) == session
    clock.now += 1
    assert signer.verify(value) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),  # the MAC
        lambda v: "x" + v,  # the session id
        lambda v: v.replace(".", ".9", 1),  # the expiry, pushed far out
        lambda v: v.rsplit(".", 1)[0],  # no MAC
        lambda v: v + ".extra",
        lambda v: "",
    ],
)
def test_a_changed_cookie_is_refused(tamper: object) -> None:
    signer = SessionSigner(b"k" * 32)
    _, value = signer.issue()
    assert callable(tamper)
    assert signer.verify(tamper(value)) is None


def test_another_secret_does_not_verify() -> None:
    _, value = SessionSigner().issue()
    assert SessionSigner().verify(value) is None


def test_workers_sharing_a_home_accept_each_others_cookies(tmp_path: Path) -> None:
    # serve --workers N: each process makes its own signer from the shared home.
    first, second = SessionSigner(shared_secret(tmp_path)), SessionSigner(shared_secret(tmp_path))
    session, value = first.issue()
    assert second.verify(value) == session
    assert second.check_csrf(session, first.csrf_token(session))
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]


def _secret_in(home: str) -> bytes:
    return shared_secret(Path(home))


def test_workers_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        secrets = pool.map(_secret_in, [str(tmp_path)] * 16)
    assert len(set(secrets)) == 1
    assert secrets[0] == (tmp_path / SECRET_FILE).read_bytes()


def test_a_damaged_secret_file_is_replaced_only_by_hand(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(ValueError, match="delete it"):
        shared_secret(tmp_path)


def test_csrf_tokens_belong_to_their_session() -> None:
    signer = SessionSigner(b"k" * 32)
    first, _ = signer.issue()
    second, _ = signer.issue()
    token = signer.csrf_token(first)
    assert signer.check_csrf(first, token)
    assert not signer.check_csrf(second, token)
    assert not signer.check_csrf(first, None)
    assert not signer.check_csrf(first, "")
    assert not signer.check_csrf(first, token[:-1])


def test_the_cookie_header_attributes() -> None:
    name, value = set_cookie_header("abc", 3600, secure=False)
    assert name == b"set-cookie"
    text = value.decode()
    assert text.startswith(f"{COOKIE_NAME}=abc;")
    for attribute in ("Path=/dashboard", "Max-Age=3600", "HttpOnly", "SameSite=Strict"):
        assert attribute in text
    assert "Secure" not in text
    assert "Secure" in set_cookie_header("abc", 3600, secure=True)[1].decode()


def test_the_cookie_is_found_among_others() -> None:
    assert cookie_value(f"a=1; {COOKIE_NAME}=v.1.m; b=2") == "v.1.m"
    assert cookie_value("a=1") is None
    assert cookie_value(None) is None
