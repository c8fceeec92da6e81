"""`relaygate batch run PIPELINE input.jsonl -o out.jsonl`: a file through a pipeline, no server.

Progress shows done / failed / rate / ETA / cost; a malformed input line is reported with its
number and skipped; re-running with the same output file skips the ids already in it, and Ctrl-C
leaves every line written so far whole.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from relaygate.auth.bootstrap import DEFAULT_KEY_NAME
from relaygate.observability.logging import configure_logging
from relaygate.pipelines.batch import BadLine, BatchItem, Totals, done_ids, read_items, run_batch
from relaygate.services import build_services
from relaygate.settings import ConfigError, Settings, load_settings


def add_batch_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("batch", help="run a JSONL file through a pipeline")
    actions = parser.add_subparsers(dest="batch_command", required=True)
    run = actions.add_parser("run", help="run PIPELINE over INPUT, one output line per item")
    run.add_argument("pipeline")
    run.add_argument("input", type=Path, help="JSONL: {id, content, ...} or {event_id, data}")
    run.add_argument("-o", "--output", type=Path, required=True, help="JSONL results (resumable)")
    run.add_argument("--concurrency", type=int, help="items at once (default: the pipeline's)")
    run.add_argument("--config", type=Path, help="YAML config file with the pipeline")
    run.add_argument("--key", default=DEFAULT_KEY_NAME, help="the key billed (default: default)")
    run.add_argument("--database-url", help="sqlite:///path or postgresql://...")
    run.add_argument("--home", help="state directory (default ~/.relaygate)")
    run.set_defaults(handler=run_batch_command)


def run_batch_command(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(
            args.config, overrides={"database_url": args.database_url, "home": args.home}
        )
    except ConfigError as exc:
        _say(f"relaygate: configuration error\n{exc}")
        return 2
    if args.pipeline not in {p.name for p in settings.pipelines}:
        known = ", ".join(p.name for p in settings.pipelines) or "(none)"
        _say(f"relaygate batch: unknown pipeline '{args.pipeline}'; configured: {known}")
        return 2
    try:
        lines = args.input.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        _say(f"relaygate batch: cannot read {args.input}: {exc.strerror}")
        return 2
    configure_logging("warning")
    items: list[BatchItem] = []
    for entry in read_items(lines):
        if isinstance(entry, BadLine):
            _say(f"{args.input}:{entry.number}: skipped: {entry.problem}")
        else:
            items.append(entry)
    finished = done_ids(args.output)
    todo = [item for item in items if item.id not in finished]
    if finished:
        _say(f"resuming: {len(items) - len(todo)} items already in {args.output}")
    try:
        totals = asyncio.run(_run(settings, args, todo))
    except KeyboardInterrupt:
        _say(f"interrupted; {args.output} holds every finished item: run again to resume")
        return 130
    _say(f"done: {totals.done} succeeded, {totals.failed} failed, ${totals.cost_usd:.6f}")
    return 0 if totals.failed == 0 else 1


async def _run(settings: Settings, args: argparse.Namespace, todo: list[BatchItem]) -> Totals:
    services = await build_services(settings, pipeline_workers=False)
    try:
        pipelines = services.pipelines
        if pipelines is None:
            raise SystemExit("relaygate batch: the pipelines could not be set up")
        pipeline = pipelines.get(args.pipeline)
        assert pipeline is not None
        concurrency = args.concurrency or pipeline.settings.concurrency
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"), TextColumn("{task.fields[rate]:.1f}/s"),
            TimeRemainingColumn(), TextColumn("${task.fields[cost]:.6f}"),
        )  # fmt: skip
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task(args.pipeline, total=len(todo), failed=0, cost=0.0, rate=0.0)
            started = time.monotonic()

            def advance(totals: Totals) -> None:
                progress.update(
                    task, completed=totals.done + totals.failed,
                    failed=totals.failed, cost=totals.cost_usd,
                    rate=(totals.done + totals.failed) / max(1e-6, time.monotonic() - started),
                )  # fmt: skip

            with args.output.open("a", encoding="utf-8") as out:
                return await run_batch(
                    pipeline, pipelines.path, todo, out,
                    key_name=args.key, concurrency=concurrency, on_line=advance,
                )  # fmt: skip
    finally:
        await services.close()


def _say(message: str) -> None:
    """One unwrapped line on stderr (a file name and line number must stay greppable)."""
    print(message, file=sys.stderr, flush=True)
