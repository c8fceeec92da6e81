"""How long and how hard each phase runs: the full run and the ``--quick`` smoke run."""

from __future__ import annotations

from dataclasses import dataclass

# The three paths of every phase: client -> mock, client -> floor relay -> mock, client ->
# gateway -> mock (the floor relay is bench/floor.py: the least work any Python relay must do).
PATHS = ("direct", "floor", "gateway")


@dataclass(frozen=True, slots=True)
class Plan:
    """Durations and loads of one benchmark run."""

    rounds: int = 3
    warm_s: float = 2.0
    load_s: float = 10.0
    connections: int = 50
    rate: float = 500.0
    streams: int = 300
    warm_streams: int = 20
    stream_concurrency: int = 10
    quiet_wait_s: float = 30.0

    def order(self, round_no: int) -> tuple[str, ...]:
        """Direct first on even rounds, gateway first on odd ones, so drift hits all alike."""
        return PATHS if round_no % 2 == 0 else PATHS[::-1]


FULL = Plan()
QUICK = Plan(rounds=1, warm_s=0.5, load_s=2.0, streams=40, warm_streams=10, quiet_wait_s=0.0)
