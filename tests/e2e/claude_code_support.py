"""Locate and drive the real Claude Code CLI installed by scripts/install-claude-code.sh."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = REPO_ROOT / ".tools" / "claude-code"
INSTALL_HINT = "run scripts/install-claude-code.sh"

# The wrapper's bin/claude.exe is a ~500-byte shell stub until npm's postinstall (which
# npm may skip) replaces it; a real native binary is hundreds of MB.
_MIN_BINARY_BYTES = 1_000_000
_ARCH_NAMES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}

# Keeps the CLI on loopback only: no telemetry, update checks, error reports or probes.
_OFFLINE_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    # The gateway retries upstream faults itself; client-side retries would only hide
    # a gateway error behind a slow, eventually green run.
    "CLAUDE_CODE_MAX_RETRIES": "0",
}


def _platform_key() -> str:
    """The suffix of the platform package npm installs, e.g. linux-x64 or darwin-arm64."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    key = f"{system}-{_ARCH_NAMES.get(machine, machine)}"
    if system == "linux" and platform.libc_ver()[0] != "glibc":
        key += "-musl"
    return key


def _is_native_binary(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > _MIN_BINARY_BYTES


def find_claude_binary(install_dir: Path = INSTALL_DIR) -> Path | None:
    """Return the runnable native Claude Code binary under install_dir, or None."""
    modules = install_dir / "node_modules" / "@anthropic-ai"
    key = _platform_key()
    candidates = [
        modules / f"claude-code-{key}" / "claude",
        modules / f"claude-code-{key}" / "claude.exe",
        install_dir / "bin" / "claude",
        modules / "claude-code" / "bin" / "claude.exe",
    ]
    return next((path for path in candidates if _is_native_binary(path)), None)


def installed_version(install_dir: Path = INSTALL_DIR) -> str:
    """The installed wrapper package's version, or "?" when unreadable."""
    manifest = install_dir / "node_modules" / "@anthropic-ai" / "claude-code" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def claude_env(base_url: str, api_key: str, home: Path) -> dict[str, str]:
    """A minimal environment: nothing inherited but PATH, so no host ANTHROPIC_* leaks in."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        **_OFFLINE_ENV,
    }


@dataclass
class ClaudeRun:
    """One finished `claude -p` run."""

    returncode: int
    stdout: str
    stderr: str
    debug_log: Path
    result: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """Everything useful for diagnosing a failed run, for an assertion message."""
        try:
            lines = self.debug_log.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        notable = [ln for ln in lines if "[ERROR]" in ln or "[API" in ln or "[WARN]" in ln]
        return "\n".join(
            [
                f"exit code: {self.returncode}",
                f"stdout: {self.stdout[-4000:]}",
                f"stderr: {self.stderr[-2000:]}",
                "debug log (errors and API lines):",
                *notable[-40:],
            ]
        )


def run_claude(
    binary: Path,
    prompt: str,
    model: str,
    env: dict[str, str],
    workdir: Path,
    extra_args: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> ClaudeRun:
    """Run `claude -p PROMPT --output-format json` in workdir and parse its JSON result."""
    debug_log = workdir.parent / f"{workdir.name}-claude-debug.log"
    args = [
        str(binary),
        "-p",
        prompt,
        "--model",
        model,
        "--output-format",
        "json",
        "--debug-file",
        str(debug_log),
        *extra_args,
    ]
    proc = subprocess.run(
        args,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    run = ClaudeRun(proc.returncode, proc.stdout, proc.stderr, debug_log)
    try:
        parsed = json.loads(proc.stdout)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        run.result = parsed
    return run
