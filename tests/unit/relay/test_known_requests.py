"""Cacheable bodies parsed and decoded once, keyed by the dialect, the bytes and the headers the
decode reads."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.relay.known_requests import (
    DECODE_HEADERS,
    PARSED_FACTOR,
    KnownRequest,
    KnownRequests,
)

OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()
NO_HEADERS: dict[str, str] = {}


def body(text: str = "hello") -> bytes:
    return orjson.dumps(
        {"model": "gpt", "temperature": 0, "messages": [{"role": "user", "content": text}]}
    )


def parsed(raw: bytes, headers: dict[str, str] = NO_HEADERS) -> KnownRequest:
    head = OPENAI.read_head(raw)
    return KnownRequest(head, OPENAI.decode_head(head, headers))


def test_a_kept_body_is_recalled_by_equal_bytes_not_by_identity() -> None:
    known = KnownRequests()
    raw = body()
    assert known.recall("openai", raw, NO_HEADERS) is None
    first = parsed(raw)
    known.keep(raw, NO_HEADERS, first)
    assert known.recall("openai", bytes(bytearray(raw)), NO_HEADERS) is first
    assert known.recall("openai", body("other"), NO_HEADERS) is None
    # The same bytes sent to the other dialect's route decode differently: not the same entry.
    assert known.recall("anthropic", raw, NO_HEADERS) is None


def test_the_headers_the_decode_reads_are_part_of_the_entry() -> None:
    known = KnownRequests()
    raw = orjson.dumps(
        {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    )
    beta = {"anthropic-version": "2023-06-01", "anthropic-beta": "tools-1"}
    head = ANTHROPIC.read_head(raw)
    kept = KnownRequest(head, ANTHROPIC.decode_head(head, beta))
    known.keep(raw, beta, kept)
    assert known.recall("anthropic", raw, dict(beta)) is kept
    assert known.recall("anthropic", raw, {"anthropic-version": "2023-06-01"}) is None
    # A header no decode reads does not matter.
    assert known.recall("anthropic", raw, {**beta, "x-request-id": "abc"}) is kept


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from([*DECODE_HEADERS, "x-other", "user-agent"]), st.text()))
def test_decoding_reads_no_header_outside_decode_headers(headers: dict[str, str]) -> None:
    """What makes the entry's key complete: a header outside ``DECODE_HEADERS`` never changes
    either dialect's decode."""
    inside = {k: v for k, v in headers.items() if k in DECODE_HEADERS}
    openai_raw = body()
    assert OPENAI.decode_request(openai_raw, headers) == OPENAI.decode_request(openai_raw, inside)
    anthropic_raw = orjson.dumps(
        {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    )
    decoded = ANTHROPIC.decode_request(anthropic_raw, headers)
    assert decoded == ANTHROPIC.decode_request(anthropic_raw, inside)


def test_keeping_twice_counts_once_and_a_twin_replaces_the_first() -> None:
    known = KnownRequests(max_bytes=len(body()) * PARSED_FACTOR)
    raw = body()
    first = parsed(raw)
    known.keep(raw, NO_HEADERS, first)
    known.keep(raw, NO_HEADERS, first)
    assert len(known) == 1
    twin = parsed(bytes(bytearray(raw)))  # a concurrent request with the same body
    known.keep(raw, NO_HEADERS, twin)
    assert len(known) == 1
    assert known.recall("openai", raw, NO_HEADERS) is twin


def test_the_least_recently_used_bodies_go_past_the_byte_bound() -> None:
    a, b, c = body("aaaa"), body("bbbb"), body("cccc")
    known = KnownRequests(max_bytes=2 * len(a) * PARSED_FACTOR)
    kept_a, kept_b = parsed(a), parsed(b)
    known.keep(a, NO_HEADERS, kept_a)
    known.keep(b, NO_HEADERS, kept_b)
    assert known.recall("openai", a, NO_HEADERS) is kept_a  # a is now the most recent
    known.keep(c, NO_HEADERS, parsed(c))
    assert known.recall("openai", b, NO_HEADERS) is None
    assert known.recall("openai", a, NO_HEADERS) is kept_a
    assert len(known) == 2


def test_a_body_above_the_bound_is_not_kept() -> None:
    raw = body("x" * 100)
    known = KnownRequests(max_bytes=len(raw) * PARSED_FACTOR - 1)
    entry = parsed(raw)
    known.keep(raw, NO_HEADERS, entry)
    assert len(known) == 0
    assert known.recall("openai", raw, NO_HEADERS) is None
    assert not entry.kept


def test_an_evicted_length_is_forgotten_with_its_last_body() -> None:
    """After eviction, bodies of that length are no longer looked up (nor kept by mistake)."""
    short, longer = body("a"), body("a much longer prompt")
    known = KnownRequests(max_bytes=len(longer) * PARSED_FACTOR)
    known.keep(short, NO_HEADERS, parsed(short))
    known.keep(longer, NO_HEADERS, parsed(longer))  # pushes the short one out
    assert known.recall("openai", short, NO_HEADERS) is None
    assert len(short) not in known._lengths
    assert known.recall("openai", longer, NO_HEADERS) is not None
