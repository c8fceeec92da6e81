"""Ledger row ids and a row's attempt log: the same text as their plain formats, made cheaper."""

from __future__ import annotations

import itertools

from relaygate.accounting.service import RowIds
from relaygate.core.context import AttemptRecord, summarize_attempts


def test_row_ids_are_the_prefix_and_the_counter_in_eight_hex_digits_or_more() -> None:
    ids = RowIds()
    prefix = ids._prefix
    assert len(prefix) == 16
    for number in range(1, 3 * 4096 + 10):  # across the table's wraps
        assert ids.next() == f"{prefix}{number:08x}"
    start = 2**32 - 4096 - 7
    ids._counter = itertools.count(start)
    ids._head = f"{prefix}{start >> 12:05x}"
    made = [ids.next() for _ in range(3 * 4096)]
    assert made == [f"{prefix}{n:08x}" for n in range(start, start + 3 * 4096)]
    assert len(made[-1]) == 16 + 9  # past 2**32: a ninth digit


def test_attempt_logs_read_as_before_for_one_attempt_and_many() -> None:
    for seconds in (0.0, 0.0004, 0.0005, 0.0015, 0.0025, 1.2345, 61.0):
        one = AttemptRecord("mock-fast", "ok", 200, seconds)
        assert summarize_attempts([one]) == f"mock-fast:ok:200:{seconds * 1000:.0f}"
        assert summarize_attempts([one, one]) == ",".join([summarize_attempts([one])] * 2)
    assert summarize_attempts([]) == ""
