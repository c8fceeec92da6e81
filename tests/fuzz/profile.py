"""The fuzz tests' Hypothesis settings: bounded and reproducible in CI.

Every run draws the same examples (``derandomize``, no example database), so a CI failure
reproduces locally with the same command. ``RELAYGATE_FUZZ_SCALE=10`` multiplies the example
counts and ``RELAYGATE_FUZZ_RANDOM=1`` draws fresh examples, for a longer hunt by hand.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

_SCALE = float(os.environ.get("RELAYGATE_FUZZ_SCALE", "1"))
_RANDOM = os.environ.get("RELAYGATE_FUZZ_RANDOM") == "1"


def fuzz_settings(max_examples: int) -> settings:
    """``max_examples`` (times the scale), a per-example deadline, no shrinking surprises."""
    return settings(
        max_examples=max(1, round(max_examples * _SCALE)),
        deadline=timedelta(seconds=15),
        derandomize=not _RANDOM,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )
