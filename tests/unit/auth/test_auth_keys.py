from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.auth.keys import (
    display_prefix,
    extract_api_key,
    generate_admin_token,
    generate_api_key,
    hash_key,
    new_api_key,
)

URLSAFE_40 = r"[A-Za-z0-9_-]{40}"


def test_api_keys_are_rg_plus_40_url_safe_chars_and_unique() -> None:
    keys = {generate_api_key() for _ in range(500)}
    assert len(keys) == 500
    for key in keys:
        assert re.fullmatch(rf"rg-{URLSAFE_40}", key), key


def test_admin_tokens_have_their_own_prefix() -> None:
    token = generate_admin_token()
    assert re.fullmatch(rf"rgadmin-{URLSAFE_40}", token)
    assert not token.startswith("rg-")


def test_hash_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_key("rg-é") == hashlib.sha256("rg-é".encode()).hexdigest()
    assert hash_key("a") != hash_key("a ")


def test_new_api_key_keeps_only_hash_and_prefix() -> None:
    made = new_api_key()
    assert made.key_hash == hash_key(made.raw_key)
    assert made.key_prefix == made.raw_key[:8] == display_prefix(made.raw_key)
    assert made.key_prefix.startswith("rg-")
    assert made.raw_key not in (made.key_hash, made.key_prefix)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": "rg-a"}, "rg-a"),
        ({"authorization": "Bearer rg-b"}, "rg-b"),
        ({"authorization": "bearer   rg-c  "}, "rg-c"),
        ({"x-api-key": "rg-a", "authorization": "Bearer rg-b"}, "rg-a"),
        ({"x-api-key": "  ", "authorization": "Bearer rg-b"}, "rg-b"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"authorization": "Bearer "}, None),
        ({"authorization": "Bearer"}, None),
        ({"x-api-key": ""}, None),
        ({}, None),
    ],
)
def test_extract_api_key(headers: dict[str, str], expected: str | None) -> None:
    assert extract_api_key(headers) == expected


@given(st.text(alphabet=st.sampled_from(" \tBbEeArRx-1"), max_size=14))
def test_bearer_token_fast_path_agrees_with_the_split(authorization: str) -> None:
    """``Authorization: Bearer <token>`` read without the split gives what the split gives."""
    scheme, _, token = authorization.partition(" ")
    expected = (token.strip() or None) if authorization and scheme.lower() == "bearer" else None
    assert extract_api_key({"authorization": authorization}) == expected
