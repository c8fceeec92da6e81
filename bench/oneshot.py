"""The entry point the single-purpose benchmarks share: a work dir, one run, a table, JSON, exit.

Exit status: 0 target met, 3 target missed (``result["meets_target"]``), 1 could not run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.procs import BenchError

Result = dict[str, Any]


def run_once(
    name: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Path], Result],
    render: Callable[[Result], str],
) -> int:
    """``run`` in a fresh work dir (removed afterwards), print ``render``, write ``--out``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"relaygate-{name}-"))
    try:
        result = run(args, workdir)
    except BenchError as exc:
        print(f"{name} bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["meets_target"] else 3
