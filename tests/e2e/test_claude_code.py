"""The real Claude Code CLI, offline, through the gateway to the built-in mock.

mock-claude: the mock speaks the Anthropic wire, so the gateway relays in the same dialect.
mock-gpt: the mock speaks the OpenAI wire, so the gateway translates Anthropic <-> OpenAI.
The CLI comes from scripts/install-claude-code.sh; without it the tests skip, except in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.claude_code_support import (
    INSTALL_HINT,
    ClaudeRun,
    claude_env,
    find_claude_binary,
    installed_version,
    run_claude,
)
from tests.e2e.server import Gateway

pytestmark = pytest.mark.claude_code

MODELS = ["mock-claude", "mock-gpt"]
GREETING = "Hello from the relaygate mock"
TOOL_MARKER = "relaygate-tool-ok"
TOOL_PROMPT = f'Run the command. mock:tool Bash {{"command": "echo {TOOL_MARKER}"}}'


@pytest.fixture(scope="session")
def claude_binary() -> Path:
    """The native CLI binary; skip when absent locally, fail when absent in CI."""
    binary = find_claude_binary()
    if binary is None:
        reason = f"Claude Code CLI not installed in .tools/claude-code ({INSTALL_HINT})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def _run(
    claude_binary: Path,
    gateway: Gateway,
    tmp_path: Path,
    prompt: str,
    model: str,
    *extra_args: str,
) -> ClaudeRun:
    home = tmp_path / "home"
    workdir = tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    env = claude_env(gateway.base_url, gateway.api_key, home)
    run = run_claude(claude_binary, prompt, model, env, workdir, extra_args)
    context = f"claude {installed_version()} --model {model}\n{run.describe()}"
    assert run.returncode == 0, context
    assert run.result.get("type") == "result", context
    assert run.result.get("is_error") is False, context
    assert run.result.get("subtype") == "success", context
    return run


@pytest.mark.parametrize("model", MODELS)
def test_plain_prompt(claude_binary: Path, gateway: Gateway, tmp_path: Path, model: str) -> None:
    run = _run(claude_binary, gateway, tmp_path, "Say hello.", model)
    assert GREETING in run.result["result"], run.describe()
    assert run.result["num_turns"] == 1, run.describe()


@pytest.mark.parametrize("model", MODELS)
def test_bash_tool_round_trip(
    claude_binary: Path, gateway: Gateway, tmp_path: Path, model: str
) -> None:
    run = _run(
        claude_binary, gateway, tmp_path, TOOL_PROMPT, model, "--allowedTools", "Bash(echo:*)"
    )
    result = run.result
    # The marker reaches the final text only via the tool's stdout in the tool_result turn:
    # the mock answers a tool_result with "Tool result received: <output>".
    assert "Tool result received" in result["result"], run.describe()
    assert TOOL_MARKER in result["result"], run.describe()
    assert result["num_turns"] >= 2, run.describe()
    assert result["permission_denials"] == [], run.describe()
