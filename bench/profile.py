"""Optional: sample the gateway with py-spy under load and list where its CPU goes.

py-spy (``pip install py-spy``) reads the process from outside (``--nonblocking``), so the
gateway runs unmodified. Its ``raw`` output is one collapsed stack per line with a sample count;
only non-idle samples are kept, so shares of samples are shares of CPU time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.openloop import new_session
from bench.plan import Plan
from bench.procs import BenchError, Server, thread_cpu_seconds
from bench.rig import (
    FAST_MODEL,
    STREAM_MODEL,
    STREAM_PROMPT,
    STREAM_SECONDS,
    Rig,
    chat_body,
    run_async,
)
from bench.streams import run_streams
from bench.throughput import PATH
from bench.wrk import run_wrk, write_script

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")
_PACKAGE = re.compile(r"(?:site-packages/|/lib/python3\.\d+/|^)(?P<pkg>[A-Za-z_][\w]*)")


def find_py_spy(explicit: str | None) -> str:
    """The py-spy executable: ``explicit``, or on PATH; ``BenchError`` with a hint otherwise."""
    path = explicit or shutil.which("py-spy")
    if path is None or not Path(path).exists():
        raise BenchError(
            "--profile needs py-spy: `pip install --target /tmp/pyspy py-spy` then "
            "`--py-spy /tmp/pyspy/bin/py-spy` (or put py-spy on PATH)"
        )
    return path


def record(
    py_spy: str, gateway: Server, seconds: float, output: Path, load: Callable[[], object]
) -> dict[str, Any]:
    """Sample ``gateway`` for ``seconds`` while ``load()`` runs; summarize the samples."""
    args = [
        py_spy,
        "record",
        "--pid",
        str(gateway.pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "250",
        "--nonblocking",
        "--threads",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    before = thread_cpu_seconds(gateway.pid)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    worker = threading.Thread(target=load)
    worker.start()
    worker.join()
    _, err = proc.communicate(timeout=seconds + 30)
    after = thread_cpu_seconds(gateway.pid)
    if proc.returncode != 0 or not output.exists():
        raise BenchError(f"py-spy failed ({proc.returncode}): {err.decode(errors='replace')}")
    summary = summarize(output.read_text())
    summary["thread_cpu_s"] = {
        name: round(cpu - before.get(name, 0.0), 3)
        for name, cpu in after.items()
        if cpu - before.get(name, 0.0) > 0
    }
    return summary


def profile_gateway(
    rig: Rig, wrk: str, plan: Plan, py_spy: str, results: Path, seconds: float | None = None
) -> dict[str, Any]:
    """py-spy the gateway under wrk load, then under streaming load (``seconds`` each, default
    the plan's load period); keep the raw stacks."""
    results.mkdir(parents=True, exist_ok=True)
    script = write_script(results / "profile.lua", chat_body(FAST_MODEL), rig.key)
    url = rig.gateway.base_url + PATH
    seconds = seconds or plan.load_s
    streams = int(plan.stream_concurrency * seconds / STREAM_SECONDS)
    body = chat_body(STREAM_MODEL, STREAM_PROMPT, stream=True)
    stagger = STREAM_SECONDS / plan.stream_concurrency

    async def stream_load() -> None:
        async with new_session() as session:
            await run_streams(
                session, url, body, rig.headers, streams, plan.stream_concurrency, stagger
            )

    loads: dict[str, Callable[[], object]] = {
        "non_streaming": lambda: run_wrk(wrk, url, script, seconds),
        "streaming": lambda: run_async(stream_load()),
    }
    summaries: dict[str, Any] = {}
    for name, load in loads.items():
        output = results / f"gateway-pyspy-{name}.txt"
        summaries[name] = record(py_spy, rig.gateway, seconds, output, load)
        summaries[name]["raw_path"] = str(output)
    return summaries


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    """Shares of the event-loop thread's samples: self time by function and by package, and
    inclusive time of relaygate functions; plus each thread's share of all samples.

    Only the thread running the server counts for the function shares: py-spy's idle detection
    can take a worker thread blocked in a queue wait (aiosqlite's) for a busy one; the per-thread
    CPU read from ``/proc`` (``thread_cpu_s``) is the ground truth for the split between threads.
    """
    stacks: dict[str, list[tuple[list[str], int]]] = {}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        thread, _, rest = stack.partition(";")
        stacks.setdefault(thread, []).append(([_name(f) for f in rest.split(";")], int(count_text)))
    all_samples = sum(n for entries in stacks.values() for _, n in entries)
    main = _main_thread(stacks)
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for frames, count in stacks.get(main, []):
        total += count
        self_time[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for name in set(frames):
            if "relaygate/" in name:
                inclusive[name] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / max(1, total)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "thread_sample_pct": {
            thread: 100.0 * sum(n for _, n in entries) / max(1, all_samples)
            for thread, entries in stacks.items()
        },
        "self_pct": shares(self_time),
        "package_self_pct": shares(packages),
        "relaygate_inclusive_pct": shares(inclusive),
    }


def _main_thread(stacks: dict[str, list[tuple[list[str], int]]]) -> str:
    def weight(thread: str) -> tuple[bool, int]:
        entries = stacks[thread]
        serves = any("run_serve" in f for frames, _ in entries for f in frames)
        return serves, sum(n for _, n in entries)

    return max(stacks, key=weight) if stacks else ""


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match.group('func')} ({match.group('file')})"


def _package(name: str) -> str:
    file = name[name.rfind("(") + 1 : -1]
    if file.startswith("relaygate/"):
        parts = file.split("/")
        return "/".join(parts[:2]) if len(parts) > 2 else parts[0]
    match = _PACKAGE.search(file)
    return match.group("pkg") if match else file


def profile_text(summaries: dict[str, Any]) -> str:
    """The py-spy summaries as text: top self-time functions and packages."""
    lines: list[str] = []
    for load, summary in summaries.items():
        lines.append(
            f"\nGateway profile, {load} load (py-spy, {summary['samples']} samples of the "
            "event-loop thread)"
        )
        threads = ", ".join(f"{n}: {s:.2f} s" for n, s in summary["thread_cpu_s"].items())
        lines.append(f"  CPU by thread (/proc): {threads}")
        spread = ", ".join(f"{t}: {p:.0f}%" for t, p in summary["thread_sample_pct"].items())
        lines.append(f"  py-spy samples by thread: {spread}")
        for title, key in (
            ("self time by package", "package_self_pct"),
            ("self time by function", "self_pct"),
            ("inclusive time, relaygate functions", "relaygate_inclusive_pct"),
        ):
            lines.append(f"  {title}:")
            lines += [f"    {pct:5.1f}%  {name}" for name, pct in summary[key][:15]]
    return "\n".join(lines)
