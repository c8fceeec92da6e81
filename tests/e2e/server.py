"""Start real relaygate processes (gateway, standalone mock) on free ports for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Keys may start or end with "-" or "_", so \b cannot delimit them.
API_KEY_PATTERN = re.compile(r"(?<![\w-])rg-[A-Za-z0-9_-]{40}(?![\w-])")
ADMIN_TOKEN_PATTERN = re.compile(r"(?<![\w-])rgadmin-[A-Za-z0-9_-]{40}(?![\w-])")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http_ok(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"process exited with {process.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


@dataclass
class Gateway:
    base_url: str
    api_key: str
    admin_token: str
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_gateway(
    home: Path,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> Gateway:
    """Start ``relaygate serve``; ``credentials`` (api key, admin token) are for a process that
    joins a database another one already bootstrapped, so none are printed."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "gateway.log"
    args = [sys.executable, "-m", "relaygate.cli.main", "serve", "--port", str(port)]
    database_url = database_url or f"sqlite:///{home / 'relaygate.db'}"
    args += ["--home", str(home), "--database-url", database_url]
    if config is not None:
        args += ["--config", str(config)]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("RELAYGATE_DATABASE_URL", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base_url}/healthz", process)
    except RuntimeError as exc:
        stop(process)
        raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')}") from None
    if credentials is not None:
        return Gateway(base_url, *credentials, home, process, log_path)
    text = log_path.read_text(errors="replace")
    api_key = API_KEY_PATTERN.search(text)
    admin = ADMIN_TOKEN_PATTERN.search(text)
    if api_key is None or admin is None:
        stop(process)
        raise RuntimeError(f"no first-run credentials printed:\n{text}")
    return Gateway(base_url, api_key.group(0), admin.group(0), home, process, log_path)


@dataclass
class MockServer:
    base_url: str
    process: subprocess.Popen[bytes]


MOCKS = ("a", "b", "c")
"""The standalone mocks of the ``mocks`` fixture (conftest.py)."""


def fault(mocks: dict[str, MockServer], name: str, kind: str, **plan: Any) -> None:
    """Script mock ``name``'s faults (``PUT /mock/faults``) and reset its stats."""
    base = mocks[name].base_url
    body = {"kind": kind, **plan}
    if kind != "none" and "first_n" not in plan and "rate" not in plan:
        body["rate"] = 1.0
    assert httpx.put(f"{base}/mock/faults", json=body).status_code == 200
    assert httpx.post(f"{base}/mock/stats/reset").status_code == 200


def stats(mocks: dict[str, MockServer], name: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{mocks[name].base_url}/mock/stats").json()
    return data


def start_mock(extra_args: list[str] | None = None) -> MockServer:
    port = free_port()
    args = [sys.executable, "-m", "relaygate.cli.main", "mock", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*args, *(extra_args or [])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base_url}/mock/stats", process)
    except RuntimeError:
        stop(process)
        raise
    return MockServer(base_url, process)
