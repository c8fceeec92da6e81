"""`relaygate batch run`: one line per item, malformed lines reported, Ctrl-C then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.pipeline_support import ORDER, content, pipeline_config
from tests.waiting import wait_until


def batch_args(tmp_path: Path, config: Path, source: Path, output: Path) -> list[str]:
    return [
        sys.executable, "-m", "relaygate.cli.main", "batch", "run", "orders", str(source),
        "-o", str(output), "--config", str(config), "--concurrency", "1",
    ]  # fmt: skip


def lines_of(output: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_an_interrupted_batch_resumes_and_writes_each_item_once(tmp_path: Path) -> None:
    config = pipeline_config(tmp_path)
    slow = config.read_text().replace(
        "provider: mock", "mock:\n      latency_ms: 300\n    provider: mock"
    )
    config.write_text(slow)
    source = tmp_path / "input.jsonl"
    items = [json.dumps({"id": f"item-{i}", "content": content("prose")}) for i in range(6)]
    items.insert(2, '{"id": "broken", "content": ')
    items.append(json.dumps({"event_id": 77, "data": {"content": content("fenced")}}))
    source.write_text("\n".join(items) + "\n")
    output = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}

    first = subprocess.Popen(
        batch_args(tmp_path, config, source, output), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until(lambda: output.exists() and len(output.read_text().splitlines()) >= 2, 30)
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err.decode()
    partial = lines_of(output)  # every line whole: parses
    assert 2 <= len(partial) < 7

    second = subprocess.run(
        batch_args(tmp_path, config, source, output), env=env, capture_output=True, timeout=60
    )
    err_text = second.stderr.decode()
    assert second.returncode == 0, err_text
    assert f"{source}:3: skipped: not valid JSON" in err_text
    assert f"resuming: {len(partial)} items already in" in err_text
    final = lines_of(output)
    ids = [line["id"] for line in final]
    assert sorted(ids) == sorted([f"item-{i}" for i in range(6)] + ["77"])
    assert len(ids) == len(set(ids))
    for line in final:
        assert line["status"] == "succeeded" and line["result"] == ORDER
        assert line["attempts"] == 1 and line["error"] is None
        assert isinstance(line["cost_usd"], float) and line["cost_usd"] > 0
