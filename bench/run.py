"""``python -m bench.run``: start the rig, run the phases, print the table, write the JSON."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import profile
from bench.hiccup import wait_until_quiet
from bench.latency import run_latency
from bench.plan import FULL, QUICK, Plan
from bench.procs import BenchError
from bench.refusals import run_refusals
from bench.report import render, targets, write_json
from bench.rig import Rig, start_rig
from bench.streaming import run_streaming
from bench.throughput import run_throughput
from bench.wrk import find_wrk

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = ("throughput", "latency", "streaming", "refusals")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: ~2 s per phase, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds per phase (default 3; quick 1)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait before each phase for other processes to go quiet (default 30)",
    )
    parser.add_argument("--phases", default=",".join(PHASES), help="comma list of phases to run")
    parser.add_argument("--out", type=Path, help="JSON result path (default bench/results/...)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    parser.add_argument("--check", action="store_true", help="exit 3 when a target is missed")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway afterwards")
    parser.add_argument("--py-spy", dest="py_spy", help="path of the py-spy executable")
    parser.add_argument(
        "--profile-seconds", type=float, help="seconds of each profiled load (default: load period)"
    )
    return parser


def _meta(plan: Plan, quick: bool) -> dict[str, Any]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if quick else "full",
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "git_commit": commit or None,
        **asdict(plan),
    }


def _run_phases(
    rig: Rig, wrk: str, workdir: Path, plan: Plan, phases: Sequence[str]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for phase in phases:
        started = time.monotonic()
        time.sleep(plan.warm_s)  # let deferred work of the previous phase (ledger flush) finish
        pids = [server.pid for server in rig.servers()]
        others = wait_until_quiet(pids, plan.quiet_wait_s)
        print(f"... {phase} (other processes: {others:.2f} cores)", file=sys.stderr, flush=True)
        if phase == "throughput":
            results[phase] = run_throughput(rig, wrk, workdir, plan)
        elif phase == "latency":
            results[phase] = run_latency(rig, plan)
        elif phase == "refusals":
            results[phase] = run_refusals(rig, wrk, workdir, plan)
        else:
            results[phase] = run_streaming(rig, plan)
        results[phase]["seconds"] = round(time.monotonic() - started, 1)
        results[phase]["others_busy_cores_at_start"] = others
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran, 1 when it could not, 3 on a missed target (--check)."""
    args = build_parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    if args.quiet_wait is not None:
        plan = replace(plan, quiet_wait_s=args.quiet_wait)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        print(f"bench: unknown phase(s) {sorted(unknown)}; choose from {PHASES}", file=sys.stderr)
        return 2
    try:
        needs_wrk = {"throughput", "refusals"} & set(phases) or args.profile
        wrk = find_wrk() if needs_wrk else ""
        py_spy = profile.find_py_spy(args.py_spy) if args.profile else ""
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"meta": _meta(plan, args.quick)}
    workdir = Path(tempfile.mkdtemp(prefix="relaygate-bench-"))
    try:
        rig = start_rig(workdir)
        try:
            results.update(_run_phases(rig, wrk, workdir, plan, phases))
            if py_spy:
                results["profile"] = profile.profile_gateway(
                    rig, wrk, plan, py_spy, RESULTS, args.profile_seconds
                )
        finally:
            rig.stop()
    except BenchError as exc:
        print(f"bench: {exc}\n(work dir kept: {workdir})", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    results["targets"] = [t.as_dict() for t in targets(results)]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = write_json(args.out or RESULTS / f"bench-{results['meta']['mode']}-{stamp}.json", results)
    print(render(results))
    if "profile" in results:
        print(profile.profile_text(results["profile"]))
    print(f"\nJSON: {out}" + (f"\nwork dir: {workdir}" if args.keep else ""))
    missed = any(not t["met"] for t in results["targets"])
    return 3 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
