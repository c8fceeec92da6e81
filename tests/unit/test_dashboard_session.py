"""The dashboard's session cookie: signed, expiring, unforgeable; CSRF tokens bound to it."""

from __future__ import annotations

import pytest

from relaygate.dashboard.session import (
    COOKIE_NAME,
    SessionSigner,
    cookie_value,
    set_cookie_header,
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


def test_another_processes_secret_does_not_verify() -> None:
    _, value = SessionSigner().issue()
    assert SessionSigner().verify(value) is None


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
