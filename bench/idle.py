"""``python -m bench.idle``: the latency at a fixed rate after a saturation phase and an idle
period (issue 13: an outside tester saw added p50 +50 ms and ``upstream_ms`` 75-80 ms against a
50 ms upstream in such a window).

The tester's setup: one gateway, the SQLite ledger, three models each with one ``provider:
openai`` deployment on the same 50 ms upstream, a key from ``relaygate keys create`` with no
options (priority 0), defaults otherwise. The bench runs, against that: the upstream directly (the
reference), the fresh gateway, ``wrk -t1 -c50`` for ``--saturate`` seconds, ``--idle`` seconds of
nothing, the gateway again and the upstream directly again. Each open-loop window (``--rate``
req/s for ``--seconds``, no warm-up, as the tester ran it) reports the client's percentiles, the
gateway's own ``upstream_ms`` and ``overhead_ms`` from its request log, the answers that were not
200, the generator's send lag, the upstream connections held at the end, the gateway's CPU per
request and per thread (a busy thread besides the event loop's would take the GIL from it) and the
machine's busy cores. ``--upstream nginx`` uses nginx with the echo module (``apt-get install
nginx-light libnginx-mod-http-echo``), the tester's kind of upstream, instead of ``relaygate mock
serve``. ``--hogs N`` runs N CPU-bound processes during the last two windows: a busy machine on
purpose, the one condition under which this bench has shown the tester's figures (bench/README.md).
Target: the window after the idle period adds at most 5 ms to the fresh window's p50.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench.hiccup import machine_ticks
from bench.oneshot import run_once
from bench.openloop import OpenLoopResult, new_session, run_open_loop
from bench.procs import (
    CLK_TCK,
    BenchError,
    Server,
    create_key,
    free_port,
    spawn,
    start_gateway,
    start_mock,
    thread_cpu_seconds,
)
from bench.rig import chat_body, run_async
from bench.stats import percentile, summarize_ms
from bench.wrk import find_wrk, run_wrk, write_script

MODELS = ("idle-a", "idle-b", "idle-c")
LATENCY_MS = 50
TARGET_ADDED_P50_MS = 5.0
PATH = "/v1/chat/completions"
NGINX_ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-idle",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).decode()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=25.0, help="each open-loop window")
    parser.add_argument("--saturate", type=float, default=25.0, help="seconds of wrk -c50")
    parser.add_argument("--idle", type=float, default=180.0, help="idle seconds before the last")
    parser.add_argument("--upstream", choices=("mock", "nginx"), default="mock")
    parser.add_argument("--timeline", action="store_true", help="per-second gateway figures")
    parser.add_argument(
        "--hogs",
        type=int,
        default=0,
        help="CPU-bound processes run during the last two windows (a busy machine on purpose)",
    )
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    return parser


def start_nginx(workdir: Path) -> Server:
    """nginx answering every chat request after ``LATENCY_MS`` (echo module's ``echo_sleep``)."""
    nginx = Path("/usr/sbin/nginx")
    if not nginx.exists() or not NGINX_ECHO_MODULE.exists():
        raise BenchError(
            "--upstream nginx needs: apt-get install nginx-light libnginx-mod-http-echo"
        )
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(
        f"load_module {NGINX_ECHO_MODULE};\n"
        "daemon off; master_process off; worker_processes 1;\n"
        f"pid {workdir}/nginx.pid; error_log {workdir}/nginx-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; client_body_temp_path {workdir}/nginx-body;\n"
        f"  server {{ listen 127.0.0.1:{port};\n"
        f"    location {PATH} {{ default_type application/json; echo_read_request_body;\n"
        f"      echo_sleep {LATENCY_MS / 1000}; echo '{ANSWER}'; }} }} }}\n"
    )
    server = spawn("nginx", [str(nginx), "-p", str(workdir), "-c", str(config)], workdir, port)
    time.sleep(0.5)
    server.check_alive()
    return server


def write_config(path: Path, upstream: Server) -> Path:
    lines = ["log_level: info", "models:"]
    for model in MODELS:
        lines += [f"  - name: {model}", "    deployments:", "      - provider: openai"]
        lines.append(f"        base_url: {upstream.base_url}/v1")
    path.write_text("\n".join(lines) + "\n")
    return path


def established_to(port: int) -> int:
    """TCP connections on this machine in ESTABLISHED state towards ``127.0.0.1:port``."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 1)[0]


def open_loop_window(
    label: str, url: str, key: str, rate: float, seconds: float, gateway: Server | None, port: int
) -> dict[str, Any]:
    """One open-loop window; with ``gateway``, its request log lines and CPU for the window."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    log_start = gateway.stderr_path.stat().st_size if gateway is not None else 0
    cpu_start = gateway.cpu_seconds() if gateway is not None else 0.0
    threads_start = thread_cpu_seconds(gateway.pid) if gateway is not None else {}
    busy_start, _ = machine_ticks()
    load_start, started = loadavg(), time.perf_counter()

    async def measure() -> tuple[OpenLoopResult, int]:
        async with new_session() as session:
            result = await run_open_loop(session, url, chat_body(MODELS[0]), headers, rate, seconds)
            return result, established_to(port)

    result, connections = run_async(measure())
    wall = time.perf_counter() - started
    record: dict[str, Any] = {
        "label": label,
        "at": time.strftime("%H:%M:%S", time.gmtime(time.time() - wall)),
        "loadavg": f"{load_start} -> {loadavg()}",
        "latency_ms": result.latency_ms(),
        "send_lag_ms": result.send_lag_ms(),
        "not_200": result.errors,
        "upstream_connections": connections,
        "machine_busy_cores": (machine_ticks()[0] - busy_start) / CLK_TCK / wall,
    }
    if gateway is not None:
        time.sleep(0.5)  # the request log's writer flushes every 20 ms
        record["gateway_cpu_ms_per_req"] = (
            1000.0 * (gateway.cpu_seconds() - cpu_start) / len(result.samples)
        )
        record["thread_cpu_ms_per_s"] = thread_cpu(gateway, threads_start, wall)
        record.update(read_log(gateway, log_start))
    return record


def thread_cpu(gateway: Server, start: dict[str, float], wall: float) -> dict[str, float]:
    """CPU ms per second of each gateway thread that used any: a busy thread besides the event
    loop's would take the GIL from it."""
    used = {
        name: 1000.0 * (seconds - start.get(name, 0.0)) / wall
        for name, seconds in thread_cpu_seconds(gateway.pid).items()
    }
    return {name: ms for name, ms in sorted(used.items(), key=lambda kv: -kv[1]) if ms > 0}


def read_log(gateway: Server, offset: int) -> dict[str, Any]:
    """The gateway's request lines since ``offset``: upstream and overhead times, per second."""
    with gateway.stderr_path.open("rb") as log:
        log.seek(offset)
        lines = log.read().splitlines()
    upstream: list[float] = []
    overhead: list[float] = []
    statuses: dict[str, int] = defaultdict(int)
    seconds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        if b'"msg":"request"' not in line:
            continue
        entry = orjson.loads(line)
        statuses[str(entry["status"])] += 1
        seconds[entry["ts"][11:19]].append(entry)
        if entry["status"] == 200:
            upstream.append(entry["upstream_ms"] / 1000.0)
            overhead.append(entry["overhead_ms"] / 1000.0)
    return {
        "statuses": dict(statuses),
        "upstream_ms": summarize_ms(upstream),
        "overhead_ms": summarize_ms(overhead),
        "timeline": [per_second(ts, entries) for ts, entries in sorted(seconds.items())],
    }


def per_second(ts: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    ups = sorted(e["upstream_ms"] for e in entries if e["status"] == 200)
    return {
        "second": ts,
        "requests": len(entries),
        "not_200": sum(1 for e in entries if e["status"] != 200),
        "upstream_p50_ms": percentile(ups, 50.0),
        "upstream_p90_ms": percentile(ups, 90.0),
        "overhead_max_ms": max((e["overhead_ms"] for e in entries), default=float("nan")),
    }


def sit_idle(gateway: Server, port: int, seconds: float) -> dict[str, Any]:
    """Wait ``seconds``; the gateway's CPU and its upstream connections at the start and end."""
    cpu, connections = gateway.cpu_seconds(), established_to(port)
    time.sleep(seconds)
    return {
        "seconds": seconds,
        "gateway_cpu_ms_per_s": 1000.0 * (gateway.cpu_seconds() - cpu) / seconds,
        "upstream_connections": f"{connections} -> {established_to(port)}",
    }


@contextmanager
def cpu_hogs(count: int) -> Iterator[None]:
    """``count`` processes that spin on the CPU until the block ends."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    wrk = find_wrk()
    if args.upstream == "nginx":
        upstream = start_nginx(workdir)
    else:
        upstream = start_mock("mock", workdir, {"latency-ms": LATENCY_MS})
    servers = [upstream]
    try:
        key = create_key(workdir, "tester")
        gateway, _ = start_gateway(
            write_config(workdir / "relaygate.yaml", upstream), workdir, banner_key=False
        )
        servers.insert(0, gateway)
        port, url = upstream.port, gateway.base_url + PATH
        window = (args.rate, args.seconds)
        direct = open_loop_window("direct", upstream.base_url + PATH, key, *window, None, port)
        fresh = open_loop_window("fresh gateway", url, key, *window, gateway, port)
        script = write_script(workdir / "post.lua", chat_body(MODELS[0]), key)
        saturation = run_wrk(wrk, url, script, args.saturate)
        idle = sit_idle(gateway, port, args.idle)
        hogs = f", {args.hogs} CPU hogs" if args.hogs else ""
        with cpu_hogs(args.hogs):
            after_label = f"after {args.idle:g} s idle{hogs}"
            after = open_loop_window(after_label, url, key, *window, gateway, port)
            # The upstream again: did it, rather than the gateway, change over the run?
            direct_end = open_loop_window(
                f"direct (end){hogs}", upstream.base_url + PATH, key, *window, None, port
            )
        gateway.check_alive()
    finally:
        for server in servers:
            server.stop()
    added = after["latency_ms"]["p50"] - fresh["latency_ms"]["p50"]
    return {
        "upstream": args.upstream,
        "windows": [direct, fresh, after, direct_end],
        "saturation": {"rps": saturation.rps, "latency_ms": saturation.latency_ms},
        "idle": idle,
        "after_minus_fresh_p50_ms": added,
        "meets_target": added <= TARGET_ADDED_P50_MS,
        "show_timeline": args.timeline,
    }


def render(result: dict[str, Any]) -> str:
    direct = result["windows"][0]["latency_ms"]
    out = [
        f"upstream: {result['upstream']} ({LATENCY_MS} ms); saturation: "
        f"{result['saturation']['rps']:.0f} req/s; idle: {result['idle']}",
        "window | at | p50 / p99 ms | added p50 / p99 | upstream_ms p50 / p90 / p99 | "
        "overhead p50 / p99 | not 200 | send lag p99 | upstream conns | CPU ms/req | "
        "machine cores | loadavg",
    ]
    for w in result["windows"]:
        lat = w["latency_ms"]
        row = [
            w["label"],
            w["at"],
            f"{lat['p50']:.1f} / {lat['p99']:.1f}",
            f"{lat['p50'] - direct['p50']:+.1f} / {lat['p99'] - direct['p99']:+.1f}",
        ]
        if "upstream_ms" in w:
            up, ov = w["upstream_ms"], w["overhead_ms"]
            row += [
                f"{up['p50']:.1f} / {up['p90']:.1f} / {up['p99']:.1f}",
                f"{ov['p50']:.2f} / {ov['p99']:.2f}",
            ]
        else:
            row += ["-", "-"]
        row += [
            str(w["not_200"]),
            f"{w['send_lag_ms']['p99']:.1f}",
            str(w["upstream_connections"]),
            f"{w.get('gateway_cpu_ms_per_req', float('nan')):.3f}",
            f"{w['machine_busy_cores']:.2f}",
            w["loadavg"],
        ]
        out.append(" | ".join(row))
        if "thread_cpu_ms_per_s" in w:
            threads = ", ".join(f"{n} {ms:.0f}" for n, ms in w["thread_cpu_ms_per_s"].items())
            out.append(f"  gateway threads, CPU ms/s: {threads}")
        if result["show_timeline"] and "timeline" in w:
            out += [
                f"  {s['second']} {s['requests']} req, {s['not_200']} not 200, upstream p50 "
                f"{s['upstream_p50_ms']:.1f} p90 {s['upstream_p90_ms']:.1f}, overhead max "
                f"{s['overhead_max_ms']:.1f}"
                for s in w["timeline"]
            ]
    out.append(f"after idle minus fresh, p50: {result['after_minus_fresh_p50_ms']:+.1f} ms")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    return run_once("idle", build_parser().parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
