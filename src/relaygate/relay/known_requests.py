"""Cacheable request bodies parsed once: the head, the decoded request and its cache plans, by the
body's bytes.

A cache hit is bookkeeping once the upstream hop is gone, and parsing the body, decoding it,
planning it and hashing its canonical form for the key were a fifth of it. The requests a cache
answers are the ones that come again byte for byte (the same prompt from the same client code),
so the cache path keeps what those steps made of each cacheable body, keyed by the dialect, the
body itself and the headers the decode reads (``DECODE_HEADERS``). Parsing and decoding are pure
functions of those, so a recalled request is the one decoding it again would give; a body that
failed to parse or decode never got here. The kept head and request are never mutated
(``ChatRequest`` is frozen and no consumer writes into its ``raw``), so callers share them as
attempts already do; only the plan memo grows, one plan per (model, key) it was planned for.

Only bodies the cache plan took are kept (a model without the cache never puts one here), bounded
by bytes, least recently used first out. A body of a length no kept body has is not even hashed:
a request that never repeats pays a length lookup.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from relaygate.core.types import ChatRequest
from relaygate.dialects.anthropic.decode import FORWARDED_HEADERS
from relaygate.dialects.base import RequestHead
from relaygate.relay.cache_plan import CachePlan

MAX_BYTES = 16 * 1024 * 1024
DECODE_HEADERS = FORWARDED_HEADERS
"""The request headers a dialect's decode reads (Anthropic's, into ``extra_headers``; OpenAI's
decode reads none)."""
PARSED_FACTOR = 4
"""A kept body counts as this many times its length: its parsed JSON and decoded request too."""

_MemoKey = tuple[str, tuple[str | None, ...], bytes]


@dataclass(slots=True)
class KnownRequest:
    """One body as the cache path uses it; ``plans`` memoizes its cache plan per (model, key)."""

    head: RequestHead
    req: ChatRequest
    plans: dict[tuple[str, str], CachePlan] = field(default_factory=dict)
    kept: bool = False


class KnownRequests:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._by_body: OrderedDict[_MemoKey, KnownRequest] = OrderedDict()
        self._lengths: Counter[int] = Counter()

    def __len__(self) -> int:
        return len(self._by_body)

    def recall(self, dialect: str, body: bytes, headers: Mapping[str, str]) -> KnownRequest | None:
        """What ``body`` sent to ``dialect`` with ``headers`` parsed and decoded to, if kept."""
        if len(body) not in self._lengths:
            return None
        memo_key = (dialect, _decode_headers(headers), body)
        known = self._by_body.get(memo_key)
        if known is not None:
            self._by_body.move_to_end(memo_key)
        return known

    def keep(self, body: bytes, headers: Mapping[str, str], known: KnownRequest) -> None:
        """Keep ``known``, which ``body`` with ``headers`` parsed and decoded to."""
        if known.kept:
            return
        size = len(body) * PARSED_FACTOR
        if size > self._max_bytes:
            return
        known.kept = True
        memo_key = (known.req.dialect, _decode_headers(headers), body)
        previous = self._by_body.pop(memo_key, None)
        if previous is not None:  # a concurrent twin kept first: this one replaces it
            self._forget(memo_key, previous)
        self._by_body[memo_key] = known
        self._lengths[len(body)] += 1
        self._bytes += size
        while self._bytes > self._max_bytes:
            oldest_key, oldest = self._by_body.popitem(last=False)
            self._forget(oldest_key, oldest)

    def _forget(self, memo_key: _MemoKey, known: KnownRequest) -> None:
        length = len(memo_key[2])
        self._bytes -= length * PARSED_FACTOR
        self._lengths[length] -= 1
        if not self._lengths[length]:
            del self._lengths[length]


def _decode_headers(headers: Mapping[str, str]) -> tuple[str | None, ...]:
    return tuple(headers.get(name) for name in DECODE_HEADERS)
