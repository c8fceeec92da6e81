"""The bench rig: three mock upstreams, the gateway and the floor relay in front of all three,
CPU accounting."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from bench.hiccup import HiccupProbe, load_generator_seconds, machine_ticks
from bench.procs import CLK_TCK, Server, create_key, start_floor, start_gateway, start_mock

# Model names in the gateway config, one per mock upstream.
FAST_MODEL = "bench-gpt"
SLOW_MODEL = "bench-gpt-50ms"
STREAM_MODEL = "bench-gpt-stream"
# The zero-latency mock again, behind a deployment that admits one request at a time (refusals).
BUSY_MODEL = "bench-busy"

# Mock options: a zero-latency upstream, a 50 ms upstream, a paced stream.
FAST_MOCK: dict[str, float] = {}
SLOW_MOCK: dict[str, float] = {"latency-ms": 50}
STREAM_MOCK: dict[str, float] = {"first-token-ms": 50, "stream-interval-ms": 10}

# The mock cuts text every 3 words: 60 words are 20 content events (plus role, finish, [DONE]).
STREAM_PROMPT = "mock:words 60"
# How long one such stream lasts: first event after 50 ms, 22 more 10 ms apart.
STREAM_SECONDS = 0.27
SETTLE_S = 0.5

# The bench key has limits, counted in memory, that the bench never reaches: the limiter does its
# work on every request as it does in production ("all features on", issue 13). Priority 10 keeps
# overload shedding on (the lag monitor runs, every request is checked) without refusing the
# bench's own requests when a busy machine delays the loop past the priority-0 step (50 ms): a
# shed request costs a fraction of a relayed one, and would make CPU per request look cheaper.
BENCH_KEY_LIMITS = (
    *("--rpm", "100000000", "--tpm", "100000000000", "--max-concurrent", "100000"),
    *("--priority", "10"),
)
# A key whose bucket is empty for the whole refusal phase (priority 10: refused by its limiter,
# not by overload shedding).
LIMITED_KEY_LIMITS = ("--rps", "1", "--burst", "1", "--priority", "10")

T = TypeVar("T")


def chat_body(model: str, content: str = "hi", stream: bool = False) -> bytes:
    """An OpenAI chat-completions request body."""
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


@dataclass(slots=True)
class Rig:
    """The running processes and the key the gateway handed out."""

    fast: Server
    slow: Server
    stream: Server
    gateway: Server
    floor: Server
    key: str
    limited_key: str
    log_offsets: list[int] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        """Headers sent on both paths (the mock ignores the key)."""
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def servers(self) -> list[Server]:
        """Every process of the rig."""
        return [self.fast, self.slow, self.stream, self.gateway, self.floor]

    def relay(self, path: str) -> Server:
        """The server a path's requests go to (``direct`` is the phase's own mock, not here)."""
        return self.floor if path == "floor" else self.gateway

    def check_alive(self) -> None:
        """Raise if any process has died."""
        for server in self.servers():
            server.check_alive()

    def stop(self) -> None:
        """Stop the relays first (they drain to the mocks), then the mocks."""
        for server in (self.gateway, self.floor, self.fast, self.slow, self.stream):
            server.stop()


def write_config(path: Path, rig_mocks: dict[str, Server]) -> Path:
    """The gateway's YAML: one model per mock upstream, OpenAI wire, no upstream key needed.

    Everything else is the defaults, which is "all features on" (issue 13): keys, limits in
    memory (no ``redis_url``), the usage ledger on the SQLite store, metrics, the per-request
    log at ``info`` and overload shedding; there is no response cache or session feature.
    """
    lines = ["log_level: info", "models:"]
    for model, mock in rig_mocks.items():
        lines += [
            f"  - name: {model}",
            "    deployments:",
            "      - provider: openai",
            f"        base_url: {mock.base_url}/v1",
        ]
        if model == BUSY_MODEL:
            lines.append("        max_concurrency: 1")
    path.write_text("\n".join(lines) + "\n")
    return path


def start_rig(workdir: Path) -> Rig:
    """Start the three mocks and the gateway; stop whatever started if a later step fails."""
    started: list[Server] = []
    try:
        mock_specs = (
            ("mock-fast", FAST_MOCK),
            ("mock-slow", SLOW_MOCK),
            ("mock-stream", STREAM_MOCK),
        )
        for name, options in mock_specs:
            started.append(start_mock(name, workdir, options))
        mocks = {FAST_MODEL: started[0], SLOW_MODEL: started[1], STREAM_MODEL: started[2]}
        upstreams = {model: mock.base_url + "/v1" for model, mock in mocks.items()}
        mocks[BUSY_MODEL] = started[0]
        config = write_config(workdir / "relaygate.yaml", mocks)
        key = create_key(workdir, "bench", *BENCH_KEY_LIMITS)
        limited_key = create_key(workdir, "bench-limited", *LIMITED_KEY_LIMITS)
        gateway, _ = start_gateway(config, workdir, banner_key=False)
        started.append(gateway)
        floor = start_floor(workdir, [key], upstreams)
    except BaseException:
        for server in started:
            server.stop()
        raise
    return Rig(started[0], started[1], started[2], gateway, floor, key, limited_key)


@dataclass(slots=True)
class CpuWindow:
    """CPU seconds each process used, and wall seconds, over one measured window."""

    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    log_lines: list[bytes] = field(default_factory=list)
    stalls: dict[str, float] = field(default_factory=dict)

    def per_item_ms(self, name: str, items: int) -> float:
        """Milliseconds of ``name``'s CPU per request (or stream)."""
        return 1000.0 * self.cpu.get(name, 0.0) / items if items else float("nan")


@contextmanager
def cpu_window(rig: Rig, settle: float = SETTLE_S) -> Iterator[CpuWindow]:
    """Measure each process's CPU over the block, plus ``settle`` s for deferred work.

    The gateway's per-request log lines written during the window are collected too, and a
    stall probe reports how long the machine itself froze processes (see ``bench.hiccup``).
    The load generator's garbage is collected and frozen first so its GC does not pause it.
    """
    servers = rig.servers()
    window = CpuWindow()
    log_start = rig.gateway.stderr_path.stat().st_size
    gc.collect()
    gc.freeze()
    probe = HiccupProbe()
    probe.start()
    busy, steal = machine_ticks()
    generator = load_generator_seconds()
    before = {s.name: s.cpu_seconds() for s in servers}
    started = time.perf_counter()
    try:
        yield window
    finally:
        window.stalls = probe.stop()
        gc.unfreeze()
    time.sleep(settle)
    window.wall = time.perf_counter() - started
    window.cpu = {s.name: s.cpu_seconds() - before[s.name] for s in servers}
    window.cpu["load generator"] = load_generator_seconds() - generator
    busy_after, steal_after = machine_ticks()
    machine = (busy_after - busy) / CLK_TCK
    window.stalls["machine_busy_cores"] = machine / window.wall
    window.stalls["others_busy_cores"] = max(0.0, machine - sum(window.cpu.values())) / window.wall
    window.stalls["steal_s"] = (steal_after - steal) / CLK_TCK
    with rig.gateway.stderr_path.open("rb") as log:
        log.seek(log_start)
        window.log_lines = log.read().splitlines()
    rig.check_alive()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop: uvloop when installed (a cheaper load generator)."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
