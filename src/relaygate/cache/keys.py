"""The cache key of a chat request: a hash of its normalized form after alias resolution.

The normalized form is the caller's decoded wire JSON (so every sampling and output parameter a
dialect knows counts, unknown ones too) with the model replaced by the resolved model's name and
the fields that do not change the answer removed (request ids, ``metadata``, ``user``, ``stream``
and its options). It is written as canonical JSON (sorted keys, no whitespace), so the same body
with keys in another order gives the same key. Bodies in the two dialects never share a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from relaygate.core.types import ChatRequest

IGNORED_FIELDS = frozenset(
    {"model", "stream", "stream_options", "metadata", "user", "request_id", "safety_identifier"}
)
"""Top-level body fields that never change the answer: left out of the key."""
ANSWER_HEADERS = ("anthropic-beta", "anthropic-version")
"""Forwarded headers that can change an upstream's answer: part of the key."""
GLOBAL_SCOPE = "*"
"""The scope of entries shared by every key (``scope: global``); no key is named ``*``."""


@dataclass(slots=True, frozen=True)
class CacheKey:
    """Where an answer is stored: its model and scope (for clearing) and the request's digest."""

    model: str
    scope: str
    digest: str


def normalized_request(req: ChatRequest, model: str) -> dict[str, Any]:
    """The parts of ``req`` an answer depends on, with the resolved ``model``."""
    body = {k: v for k, v in req.raw.items() if k not in IGNORED_FIELDS}
    headers = {h: req.extra_headers[h] for h in ANSWER_HEADERS if h in req.extra_headers}
    return {"dialect": req.dialect, "model": model, "body": body, "headers": headers}


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def cache_key(req: ChatRequest, model: str, scope: str) -> CacheKey:
    """The key of ``req`` for the resolved ``model`` within ``scope`` (a key's name, or
    ``GLOBAL_SCOPE``)."""
    digest = hashlib.blake2b(canonical_json(normalized_request(req, model)), digest_size=20)
    return CacheKey(model, scope, digest.hexdigest())
