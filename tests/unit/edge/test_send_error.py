"""An error's answer: its Retry-After in whole seconds, rounded up, at least 1."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import pytest

from relaygate.core.context import RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.core.redact import Redactor
from relaygate.dialects.openai.dialect import OpenAIDialect
from relaygate.edge.handler import send_error


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (0.0, b"1"),
        (-3.0, b"1"),
        (0.2, b"1"),
        (1.0, b"1"),
        (1.01, b"2"),
        (59.5, b"60"),
        (3600.0, b"3600"),
        (3600.2, b"3601"),
        (86_400.0, b"86400"),
    ],
)
async def test_retry_after_is_whole_seconds_rounded_up(retry_after: float, header: bytes) -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    ctx = RequestContext("req_1", "openai.chat", "openai")
    err = RateLimitedError("slow down", retry_after=retry_after)
    await send_error(ctx, send, OpenAIDialect(), err, Redactor([]))
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 429
    assert headers[b"retry-after"] == header
    assert headers[b"retry-after"] == str(max(1, math.ceil(retry_after))).encode()
