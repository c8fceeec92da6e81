"""How long a request may wait: the configured cap, the caller's maximum, its client timeout."""

from __future__ import annotations

import pytest

from relaygate.admission.budget import CLIENT_TIMEOUT_HEADER, MAX_WAIT_HEADER, wait_budget


def no_latency_asked() -> float:
    raise AssertionError("the typical latency is asked only with a client timeout")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 1.0),
        ({MAX_WAIT_HEADER: "0"}, 0.0),
        ({MAX_WAIT_HEADER: "250"}, 0.25),
        ({MAX_WAIT_HEADER: "5000"}, 1.0),
        ({MAX_WAIT_HEADER: ""}, 1.0),
        ({MAX_WAIT_HEADER: "soon"}, 1.0),
        ({MAX_WAIT_HEADER: "-5"}, 1.0),
        ({MAX_WAIT_HEADER: "nan"}, 1.0),
    ],
)
def test_the_callers_maximum_caps_the_budget(headers: dict[str, str], expected: float) -> None:
    assert wait_budget(1.0, headers, no_latency_asked) == expected


def test_a_client_timeout_leaves_room_for_a_typical_call() -> None:
    assert wait_budget(5.0, {CLIENT_TIMEOUT_HEADER: "4"}, lambda: 3.5) == 0.5
    assert wait_budget(5.0, {CLIENT_TIMEOUT_HEADER: "2"}, lambda: 3.5) == 0.0
    assert wait_budget(5.0, {CLIENT_TIMEOUT_HEADER: "x"}, no_latency_asked) == 5.0
    both = {MAX_WAIT_HEADER: "100", CLIENT_TIMEOUT_HEADER: "60"}
    assert wait_budget(5.0, both, lambda: 1.0) == 0.1
