"""``Request``'s headers: ASGI's byte pairs as latin-1 text, whatever names were seen before."""

from __future__ import annotations

from relaygate.web import request as request_module
from relaygate.web.request import MAX_KNOWN_NAMES, Request


def _headers(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    scope = {"method": "POST", "path": "/", "headers": pairs}
    return Request(scope, None).headers  # type: ignore[arg-type]


def _expected(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in pairs}


def test_latin1_text_and_the_later_of_a_repeated_name() -> None:
    pairs = [
        (b"authorization", b"Bearer sk-\xe9"),
        (b"x-\xff", b"\x00\x7f\x80"),
        (b"x-dup", b"first"),
        (b"x-dup", b"second"),
    ]
    for _ in range(2):  # the second time from the names remembered
        assert (
            _headers(pairs)
            == _expected(pairs)
            == {
                "authorization": "Bearer sk-é",
                "x-ÿ": "\x00\x7f\x80",
                "x-dup": "second",
            }
        )


def test_names_remembered_are_bounded() -> None:
    many = [(f"x-name-{i}".encode(), str(i).encode()) for i in range(MAX_KNOWN_NAMES * 2)]
    assert _headers(many) == _expected(many)
    assert len(request_module._KNOWN_NAMES) <= MAX_KNOWN_NAMES
    assert _headers(many) == _expected(many)
