"""Start, watch and stop the processes under test: mock upstreams and the gateway.

Every process listens on 127.0.0.1 only. Its CPU time is read from ``/proc/<pid>/stat``
(user + system, all threads), which is the figure least disturbed by sharing cores with the
load generator.
"""

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

CLK_TCK = os.sysconf("SC_CLK_TCK")
_KEY = re.compile(rb"rg-[A-Za-z0-9_-]{40}")
_RELAYGATE = [sys.executable, "-m", "relaygate.cli.main"]


class BenchError(RuntimeError):
    """A process under test failed to start, answer or stay up."""


@dataclass(slots=True)
class Server:
    """A server process started by the benchmark, with its port and log files."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    files: list[IO[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The server's process id (the Python interpreter itself, no wrapper)."""
        return self.proc.pid

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time consumed so far by every thread of the process."""
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        """Resident set size in MiB."""
        return rss_mb(self.pid)

    def check_alive(self) -> None:
        """Raise ``BenchError`` with the tail of its stderr when the process has exited."""
        if self.proc.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self.proc.returncode}; "
                f"stderr tail:\n{tail(self.stderr_path)}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT (uvicorn's graceful stop), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for handle in self.files:
            handle.close()


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment (so in the processes it starts), and the
    previous values back afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds, from ``/proc/<pid>/stat``."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (e.g. uvicorn's worker processes under ``--workers N``)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += process_tree(int(child))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and all its descendants."""
    return sum(cpu_seconds(p) for p in process_tree(pid))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """utime + stime of each thread of ``pid``, keyed ``name/tid``."""
    found: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        found[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return found


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (0 when unknown)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def spawn(name: str, args: list[str], workdir: Path, port: int) -> Server:
    out_path, err_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    out, err = out_path.open("wb"), err_path.open("wb")
    proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    return Server(name, port, proc, out_path, err_path, [out, err])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(server: Server, path: str, timeout: float = 30.0) -> None:
    """Poll ``GET path`` until it answers 200; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        if _http_ok(server.base_url + path):
            return
        time.sleep(0.1)
    raise BenchError(f"{server.name} did not answer {path} within {timeout:.0f} s")


def start_mock(name: str, workdir: Path, options: Mapping[str, float]) -> Server:
    """``relaygate mock serve`` on a free port with ``--<option> value`` for each option."""
    port = free_port()
    args = [*_RELAYGATE, "mock", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for option, value in options.items():
        args += [f"--{option}", str(value)]
    server = spawn(name, args, workdir, port)
    wait_ready(server, "/mock/stats")
    return server


def start_floor(
    workdir: Path,
    keys: list[str],
    upstreams: dict[str, str],
    *,
    wrapper: Sequence[str] = (),
    ready_seconds: float = 30.0,
) -> Server:
    """``python -m bench.floor`` on a free port; ``upstreams``: model -> base URL (``.../v1``).
    ``wrapper`` and ``ready_seconds`` as for ``start_gateway``."""
    port = free_port()
    config = workdir / "floor.json"
    config.write_bytes(orjson.dumps({"keys": keys, "upstreams": upstreams}))
    args = [*wrapper, sys.executable, "-m", "bench.floor", "--port", str(port)]
    server = spawn("floor", [*args, "--config", str(config)], workdir, port)
    wait_ready(server, "/healthz", ready_seconds)
    return server


def database_url(workdir: Path) -> str:
    """The SQLite store every bench process of ``workdir`` shares."""
    return f"sqlite:///{workdir / 'relaygate.db'}"


def create_key(workdir: Path, name: str, *options: str) -> str:
    """``relaygate keys create --name NAME OPTIONS...`` in ``workdir``'s store; the raw key."""
    args = [*_RELAYGATE, "keys", "create", "--json", "--name", name, *options]
    args += ["--database-url", database_url(workdir)]
    done = subprocess.run(args, capture_output=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"keys create {name} failed: {done.stderr.decode(errors='replace')}")
    key: str = orjson.loads(done.stdout)["key"]
    return key


def start_gateway(
    config: Path,
    workdir: Path,
    banner_key: bool = True,
    *,
    wrapper: Sequence[str] = (),
    ready_seconds: float = 30.0,
) -> tuple[Server, str]:
    """``relaygate serve`` on a free port with ``workdir``'s store; returns it and the API key
    printed on first start ('' with ``banner_key=False``: keys were made with ``create_key``).
    ``wrapper`` runs it under another program (``valgrind ...``), which may need a longer
    ``ready_seconds``."""
    port = free_port()
    home = workdir / "home"
    args = [
        *wrapper,
        *_RELAYGATE,
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--home",
        str(home),
        "--database-url",
        database_url(workdir),
    ]
    server = spawn("gateway", args, workdir, port)
    wait_ready(server, "/healthz", ready_seconds)
    return server, _read_key(server, ready_seconds) if banner_key else ""


def _read_key(server: Server, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _KEY.search(server.stdout_path.read_bytes())
        if match:
            return match.group(0).decode()
        server.check_alive()
        time.sleep(0.1)
    raise BenchError(
        "the gateway printed no API key (rg-...) on first start; stdout:\n"
        + tail(server.stdout_path)
    )
