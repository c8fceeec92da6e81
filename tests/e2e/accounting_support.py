"""Helpers for the accounting end-to-end tests: config, and calls that report what the caller saw.

The embedded mock models are priced by the shipped ``mock`` entry: $1 per million input tokens,
$4 per million output tokens.
"""

from __future__ import annotations

import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from relaygate.settings.defaults import EMBEDDED_DEFAULTS
from tests.e2e.server import Gateway

INPUT_PRICE, OUTPUT_PRICE = 1.0, 4.0


def write_config(home: Path, **accounting: Any) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = {
        **EMBEDDED_DEFAULTS,
        "key_cache_refresh_seconds": 0.1,
        # No shedding on event-loop lag: on a loaded machine a busy 429 ("relaygate is busy")
        # would pass for a budget refusal in the tests that count them.
        "limits": {"overload": {"enabled": False}},
        "accounting": {
            "ledger": {"flush_interval_seconds": 0.1, "retry_seconds": 0.2},
            "budget": {"sync_seconds": 0.1},
            **accounting,
        },
    }
    path = home / "relaygate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def ledger_request_ids(url: str) -> list[str]:
    """The request id of every ledger row in the database at ``url`` (duplicates kept)."""
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch("SELECT request_id FROM usage_ledger")]
    finally:
        await conn.close()


@dataclass
class Sent:
    request_id: str
    status: int
    usage: tuple[int, int] | None  # (input, output) as the caller saw it
    partial: bool = False


def openai_call(
    gw: Gateway,
    model: str,
    text: str,
    *,
    stream: bool,
    key: str = "",
    max_tokens: int = 0,
    include_usage: bool = True,
) -> Sent:
    """One chat completion; ``usage`` is what the caller was told (None when not asked)."""
    rid = f"t-{uuid.uuid4().hex[:16]}"
    headers = {"authorization": f"Bearer {key or gw.api_key}", "x-request-id": rid}
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    if not stream:
        response = httpx.post(f"{gw.base_url}/v1/chat/completions", json=body, headers=headers)
        if response.status_code != 200:
            return Sent(rid, response.status_code, None)
        usage = response.json()["usage"]
        return Sent(rid, 200, (usage["prompt_tokens"], usage["completion_tokens"]))
    body["stream"] = True
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    usage_seen: tuple[int, int] | None = None
    partial = False
    with httpx.stream(
        "POST", f"{gw.base_url}/v1/chat/completions", json=body, headers=headers
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                partial = True
            elif chunk.get("usage"):
                usage_seen = (chunk["usage"]["prompt_tokens"], chunk["usage"]["completion_tokens"])
    return Sent(rid, response.status_code, usage_seen, partial)


def anthropic_stream(gw: Gateway, model: str, text: str) -> Sent:
    rid = f"t-{uuid.uuid4().hex[:16]}"
    headers = {"x-api-key": gw.api_key, "anthropic-version": "2023-06-01", "x-request-id": rid}
    body = {
        "model": model,
        "max_tokens": 500,
        "stream": True,
        "messages": [{"role": "user", "content": text}],
    }
    input_tokens = output_tokens = 0
    partial = False
    with httpx.stream("POST", f"{gw.base_url}/v1/messages", json=body, headers=headers) as r:
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event["type"] == "message_start":
                input_tokens = event["message"]["usage"]["input_tokens"]
            elif event["type"] == "message_delta":
                output_tokens = event["usage"]["output_tokens"]
            elif event["type"] == "error":
                partial = True
    return Sent(rid, r.status_code, (input_tokens, output_tokens), partial)


def held_refusals_seen(gw: Gateway, key: str, rounds: int = 10) -> list[httpx.Response]:
    """Rounds of concurrent requests, each holding far more (``max_tokens`` 1000) than it costs,
    until some are refused only because the others' holds are in flight; returns the 429s."""
    body = {
        "model": "mock-gpt",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "hold mock:words 5"}],
    }
    headers = {"authorization": f"Bearer {key}"}

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{gw.base_url}/v1/chat/completions", json=body, headers=headers)

    refused: list[httpx.Response] = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            # Only budget refusals count: a loaded machine may also shed a request ("relaygate
            # is busy"), which is another 429 and not what this helper looks for.
            refused += [r for r in pool.map(call, range(8)) if _budget_refusal(r)]
            if refused:
                break
    return refused


def _budget_refusal(reply: httpx.Response) -> bool:
    return reply.status_code == 429 and "Budget" in reply.json()["error"]["message"]


def assert_retryable_held_refusal(reply: httpx.Response) -> None:
    """A refusal caused by holds in flight: retryable, in the OpenAI dialect, with the amounts."""
    error = reply.json()["error"]
    assert error["type"] == "rate_limit_error", error
    held = re.search(r"\$(\d+\.\d+) held by requests in flight", error["message"])
    # Or refused at every ask by holds that finished right after (a busy key): no amounts then,
    # since the holds that refused it are gone.
    contended = re.search(r"was refused \d+ times by holds of requests", error["message"])
    assert contended or (held is not None and float(held.group(1)) > 0), error["message"]
    assert "retry shortly" in error["message"]
    assert reply.headers.get("x-should-retry") != "false"
    assert int(reply.headers["retry-after"]) >= 1
