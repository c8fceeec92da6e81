"""uvicorn's response-header checks, skipped for the names and short values already found clean.

uvicorn's httptools protocol checks each header of each response with two regular expression
searches (forbidden characters in the name, control characters in the value): ~0.6 µs a search
here, ~7 µs for a refusal's six headers, more than decoding its request's headers. The names
and many values (the content type, the cache status, Retry-After seconds, small lengths) come
again response after response. ``install`` puts a ``RememberedCheck`` in place of each pattern
in uvicorn's module (where its protocol looks them up per response): the same pattern's search,
skipped for a value it found clean before, so a bad header is refused exactly as before.

Only values up to ``SHORT_VALUE`` bytes are remembered (a cookie, a token or a signature is
longer), at most ``MAX_REMEMBERED`` per check, added while there is room: the first responses'
recurring names and values fill it; a unique value (a request id) is searched each time.
"""

from __future__ import annotations

import re

from uvicorn.protocols.http import httptools_impl

SHORT_VALUE = 20
MAX_REMEMBERED = 512
_CHECKS = ("HEADER_RE", "HEADER_VALUE_RE")


class RememberedCheck:
    """``pattern.search`` for the one use uvicorn makes of it (is anything found?), remembering
    the short values it found nothing in."""

    __slots__ = ("_clean", "pattern")

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self._clean: set[bytes] = set()

    def search(self, value: bytes) -> re.Match[bytes] | None:
        if value in self._clean:
            return None
        found = self.pattern.search(value)
        if found is None and len(value) <= SHORT_VALUE and len(self._clean) < MAX_REMEMBERED:
            self._clean.add(bytes(value))
        return found


def install() -> None:
    """Put a ``RememberedCheck`` in place of each of uvicorn's header patterns (once)."""
    for name in _CHECKS:
        current = getattr(httptools_impl, name)
        if not isinstance(current, RememberedCheck):
            setattr(httptools_impl, name, RememberedCheck(current))
