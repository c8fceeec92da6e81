"""uvicorn's response-header checks, remembered for the names and short values seen before.

uvicorn's httptools protocol checks each header of each response with two regular expression
searches (forbidden characters in the name, control characters in the value): ~1,700
instructions a name and ~0.6 µs a search, more than decoding the request's headers. The names
and many values (the content type, the cache status, Retry-After seconds, small lengths) come
again response after response. ``install`` puts a ``RememberedCheck`` in place of each pattern
in uvicorn's module, where its protocol looks them up per response; uvicorn only asks whether
the search found anything, and the answer depends on the bytes alone, so remembering it
changes nothing uvicorn decides: a bad header is refused exactly as before.

Names up to ``BytesMemo``'s default length and values up to ``SHORT_VALUE`` bytes are
remembered (a cookie, a token or a signature is longer), at most ``NAMES_KEPT`` and
``VALUES_KEPT``, added while there is room: the first responses' recurring names and values
fill it; a unique value (a request id) is searched each time. Header names and values must be
``bytes``, as ASGI says (a ``bytearray`` is not hashable).
"""

from __future__ import annotations

import re

from uvicorn.protocols.http import httptools_impl

from relaygate.core.memo import MAX_KEY_BYTES, BytesMemo

NAMES_KEPT = 256
VALUES_KEPT = 512
SHORT_VALUE = 20


class RememberedCheck(BytesMemo[bool]):
    """``pattern.search`` for the one use uvicorn makes of it (did it find anything?), the
    answer remembered per name or value seen; ``search`` is the memo's own lookup, in C for a
    known one."""

    __slots__ = ("pattern", "search")

    def __init__(self, pattern: re.Pattern[bytes], limit: int, longest: int) -> None:
        super().__init__(lambda text: pattern.search(text) is not None, limit, longest)
        self.pattern = pattern
        self.search = self.__getitem__


_CHECKS = (("HEADER_RE", NAMES_KEPT, MAX_KEY_BYTES), ("HEADER_VALUE_RE", VALUES_KEPT, SHORT_VALUE))


def install() -> None:
    """Put a ``RememberedCheck`` in place of each of uvicorn's header patterns (once)."""
    for name, limit, longest in _CHECKS:
        current = getattr(httptools_impl, name)
        if not isinstance(current, RememberedCheck):
            setattr(httptools_impl, name, RememberedCheck(current, limit, longest))
