"""Made-up request ids: the format callers and logs see, unique across calls and processes."""

from __future__ import annotations

import re

from relaygate.core.request_ids import RequestIds, generate_request_id

FORMAT = re.compile(r"req_[0-9a-f]{24}")


def test_ids_keep_the_format_and_never_repeat() -> None:
    ids = [generate_request_id() for _ in range(100_000)]
    assert all(FORMAT.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_two_generators_do_not_share_ids() -> None:
    first, second = RequestIds(), RequestIds()
    assert {first() for _ in range(1_000)}.isdisjoint({second() for _ in range(1_000)})


def test_reseeding_changes_the_prefix() -> None:
    ids = RequestIds()
    before = ids()
    ids.reseed()
    assert ids()[:16] != before[:16]
