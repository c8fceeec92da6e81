"""Request ids the gateway makes up: ``req_`` and 24 hex digits, unique without a syscall each.

A per-process random prefix (48 bits, drawn again in a forked child) and a counter (48 bits):
``secrets.token_hex`` per request cost a ``getrandom`` call and ~1.5 us. The ids are not secrets
(a caller may choose its own with ``x-request-id``); the counter does show the order of one
process's requests.
"""

from __future__ import annotations

import itertools
import os
import secrets

_COUNTER_MASK = (1 << 48) - 1


class RequestIds:
    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count()
        self.reseed()

    def reseed(self) -> None:
        self._prefix = "req_" + secrets.token_hex(6)
        self._counter = itertools.count(secrets.randbits(48))

    def __call__(self) -> str:
        # 12 hex digits, zero-padded: ``bytes.hex`` costs less than a ``:012x`` format.
        return self._prefix + (next(self._counter) & _COUNTER_MASK).to_bytes(6, "big").hex()


generate_request_id = RequestIds()
os.register_at_fork(after_in_child=generate_request_id.reseed)
