"""``BytesMemo``: a function's answers for the short byte strings it has seen, read in C.

For the per-request work on strings that repeat across requests, header names above all
(decoding and lower-casing them, checking their characters): ``memo[key]``, or the bound
``memo.__getitem__`` handed on as the function itself, is one dict lookup in C for a known key,
where the work it stands for is a few hundred to a few thousand instructions. An unknown key
is worked out by the function (``__missing__``) and kept while the memo holds fewer than
``limit`` keys and the key is at most ``longest`` bytes long (``MAX_KEY_BYTES`` unless told),
so callers that make names up cannot grow it without bound. The function must depend on the
key's bytes alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

V = TypeVar("V")

# Longer keys are worked out each time: header names in use are far shorter.
MAX_KEY_BYTES = 64


class BytesMemo(dict[bytes, V]):
    """``fn``'s answer per byte string seen, up to ``limit`` of them (see the module)."""

    __slots__ = ("_fn", "_limit", "_longest")

    def __init__(self, fn: Callable[[bytes], V], limit: int, longest: int = MAX_KEY_BYTES) -> None:
        super().__init__()
        self._fn = fn
        self._limit = limit
        self._longest = longest

    def __missing__(self, key: bytes) -> V:
        value = self._fn(key)
        if len(self) < self._limit and len(key) <= self._longest:
            self[key] = value
        return value
