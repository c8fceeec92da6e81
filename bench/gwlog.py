"""Read the gateway's own per-request JSON log lines (its self-reported overhead)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from bench.stats import summarize_ms


@dataclass(frozen=True, slots=True)
class GatewayLog:
    """What the gateway logged about the requests of one window."""

    requests: int
    ok: int
    overhead_s: list[float]

    @property
    def overhead_ms(self) -> dict[str, float]:
        """Percentiles of the gateway's self-reported overhead of its 200 answers."""
        return summarize_ms(self.overhead_s)


def read_request_log(lines: list[bytes]) -> GatewayLog:
    """Count ``"msg":"request"`` lines and summarize ``overhead_ms`` of the 200 answers."""
    requests = ok = 0
    overhead: list[float] = []
    for line in lines:
        if b'"msg":"request"' not in line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        requests += 1
        if record.get("status") != 200:
            continue
        ok += 1
        value = record.get("overhead_ms")
        if isinstance(value, int | float):
            overhead.append(value / 1000.0)
    return GatewayLog(requests, ok, overhead)
