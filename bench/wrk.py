"""Saturation load with ``wrk`` (closed loop, fixed connections): POST through a Lua script."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.procs import BenchError

INSTALL_HINT = (
    "wrk is needed for the throughput phase: install it with `sudo apt-get install wrk` "
    "(Debian/Ubuntu), `brew install wrk` (macOS), or build it from https://github.com/wg/wrk"
)

_LUA = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run reported."""

    requests: int
    seconds: float
    rps: float
    non_2xx: int
    socket_errors: int
    latency_ms: dict[str, float]

    @property
    def ok_requests(self) -> int:
        """Requests answered 2xx/3xx."""
        return self.requests - self.non_2xx


def find_wrk() -> str:
    """The wrk executable's path; ``BenchError`` with install instructions when missing."""
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(INSTALL_HINT)
    return path


def write_script(
    path: Path, body: bytes, key: str, headers: Mapping[str, str] | None = None
) -> Path:
    """Write the POST Lua script (body as a Lua long string) and return its path."""
    text = body.decode()
    if "]]" in text:
        raise BenchError("the request body must not contain ']]' (Lua long string)")
    extra = "".join(
        f'wrk.headers["{name}"] = "{value}"\n' for name, value in (headers or {}).items()
    )
    path.write_text(_LUA.format(body=f"[[{text}]]", key=key) + extra)
    return path


def run_wrk(wrk: str, url: str, script: Path, seconds: float, connections: int = 50) -> WrkResult:
    """Run ``wrk -t1 -c<connections> -d<seconds>s --latency`` and parse its report."""
    args = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_report(done.stdout)


def parse_report(text: str) -> WrkResult:
    """Parse wrk's text report (with ``--latency``)."""
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if total is None or rps is None:
        raise BenchError(f"cannot parse wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    latency = {
        f"p{pct}": _to_ms(value, unit)
        for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_to_ms(total.group(2), total.group(3)) / 1000.0,
        rps=float(rps.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        latency_ms=latency,
    )


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]
