"""uvicorn's header checks with remembered clean values: the same answers, a bad header refused
every time, nothing long remembered."""

from __future__ import annotations

import asyncio
import re

import pytest
from tests.unit.web.test_protocol import GET, connect, settle
from uvicorn.protocols.http import httptools_impl

import relaygate.web.protocol  # noqa: F401  (installs the checks)
from relaygate.web.header_checks import (
    MAX_REMEMBERED,
    SHORT_VALUE,
    RememberedCheck,
    install,
)
from relaygate.web.request import Receive, Scope, Send
from relaygate.web.responses import send_body


def test_installed_once_in_uvicorns_module() -> None:
    install()
    name, value = httptools_impl.HEADER_RE, httptools_impl.HEADER_VALUE_RE
    assert isinstance(name, RememberedCheck) and isinstance(value, RememberedCheck)
    install()
    assert httptools_impl.HEADER_RE is name and httptools_impl.HEADER_VALUE_RE is value


@pytest.mark.parametrize(
    "value", [b"skip", b"application/json", b"x" * 200, b"bad\nvalue", b"a b", b"\x7f", b""]
)
def test_the_same_answer_as_the_pattern_every_time(value: bytes) -> None:
    for check in (httptools_impl.HEADER_RE, httptools_impl.HEADER_VALUE_RE):
        assert isinstance(check, RememberedCheck)
        expected = check.pattern.search(value) is None
        for _ in range(3):
            assert (check.search(value) is None) is expected


def test_only_short_clean_values_are_remembered_and_bounded() -> None:
    check = RememberedCheck(re.compile(b"[\x00-\x1f]"))
    check.search(b"x" * (SHORT_VALUE + 1))
    check.search(b"bad\n")
    assert not check._clean
    for i in range(MAX_REMEMBERED * 2):
        assert check.search(str(i).encode()) is None
    assert len(check._clean) == MAX_REMEMBERED


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
