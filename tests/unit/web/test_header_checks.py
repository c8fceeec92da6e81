"""uvicorn's header checks, remembered: the same answers, a bad header refused every time,
nothing long remembered, the memory bounded."""

from __future__ import annotations

import asyncio
import re

import pytest
from tests.unit.web.test_protocol import GET, connect, settle
from uvicorn.protocols.http import httptools_impl

import relaygate.web.protocol  # noqa: F401  (installs the checks)
from relaygate.core.memo import MAX_KEY_BYTES
from relaygate.web.header_checks import (
    NAMES_KEPT,
    SHORT_VALUE,
    VALUES_KEPT,
    RememberedCheck,
    install,
)
from relaygate.web.request import Receive, Scope, Send
from relaygate.web.responses import send_body


def _checks() -> tuple[RememberedCheck, RememberedCheck]:
    name, value = httptools_impl.HEADER_RE, httptools_impl.HEADER_VALUE_RE
    assert isinstance(name, RememberedCheck) and isinstance(value, RememberedCheck)
    return name, value


def test_installed_once_in_uvicorns_module() -> None:
    install()
    name, value = _checks()
    assert isinstance(name.pattern, re.Pattern) and isinstance(value.pattern, re.Pattern)
    install()
    assert _checks() == (name, value)
    assert httptools_impl.HEADER_RE is name and httptools_impl.HEADER_VALUE_RE is value


TEXTS = [b"skip", b"application/json", b"x" * 200, b"bad\nvalue", b"a b", b"\x7f", b""]
TEXTS += [b"bad:name", b"(", b"tab\there", b"x-request-id", b"x-" * 60, b"\xe9t\xe9"]


@pytest.mark.parametrize("text", TEXTS)
def test_the_same_answer_as_the_pattern_every_time(text: bytes) -> None:
    for check in _checks():
        found = check.pattern.search(text) is not None
        for _ in range(3):  # first worked out, then remembered
            assert bool(check.search(text)) is found


def test_only_short_values_are_remembered_and_the_memory_is_bounded() -> None:
    check = RememberedCheck(re.compile(b"[\x00-\x1f]"), VALUES_KEPT, SHORT_VALUE)
    assert check.search(b"x" * (SHORT_VALUE + 1)) is False
    assert check.search(b"bad\n") is True
    assert b"x" * (SHORT_VALUE + 1) not in check and b"bad\n" in check
    for i in range(VALUES_KEPT * 2):
        assert check.search(str(i).encode()) is False
    assert len(check) == VALUES_KEPT
    assert check.search(b"made\x01up") is True and b"made\x01up" not in check


def test_names_are_remembered_up_to_their_own_bound() -> None:
    check = RememberedCheck(re.compile(b"[^a-z-]"), NAMES_KEPT, MAX_KEY_BYTES)
    for n in range(NAMES_KEPT + 50):
        assert check.search(b"x-made-up-" + b"a" * (n % 40) + bytes([97 + n % 26])) is False
    assert len(check) <= NAMES_KEPT


@pytest.mark.parametrize(
    "header", [(b"bad name", b"1"), (b"x-ok", b"bad\r\nvalue"), (b"x-ok", b"\x00")]
)
async def test_uvicorn_still_refuses_a_bad_header_after_good_ones(
    header: tuple[bytes, bytes],
) -> None:
    async def good(scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, b"{}", [(b"x-ok", b"1"), (b"content-type", b"text/plain")])

    async def bad(scope: Scope, receive: Receive, send: Send) -> None:
        await send_body(send, 200, b"{}", [(b"x-ok", b"1"), header])

    for _ in range(2):
        server, transport = connect(good)
        server.data_received(GET)
        await settle()
        assert transport.writes and transport.writes[0].startswith(b"HTTP/1.1 200 OK")
    server, transport = connect(bad)
    server.data_received(GET)
    await settle()
    await asyncio.sleep(0)
    assert not any(b" 200 OK" in write for write in transport.writes)
