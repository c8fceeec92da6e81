"""A pipeline job's model call through the gateway's own request path, in process.

The same steps as ``edge.handler._chat`` minus HTTP: the submitting key (found by name, refused
once disabled or revoked), its model permission, admission (key limits, global cap, queue),
budget reservation, the attempt loop with retries, failover and fallbacks, then metrics and the
ledger row, so a job's calls are billed to its key like the key's own requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relaygate.accounting import Accounting
from relaygate.admission import Admitter
from relaygate.auth.cache import KeyCache
from relaygate.core.context import RequestContext
from relaygate.core.errors import GatewayError
from relaygate.core.redact import Redactor
from relaygate.core.types import ChatRequest, Message, TextBlock
from relaygate.extraction import Turn
from relaygate.observability.metrics import Metrics
from relaygate.relay.attempts import AttemptRunner
from relaygate.relay.whole import fetch_answer
from relaygate.routing.catalog import Catalog

ROUTE = "pipeline.chat"


@dataclass(frozen=True, slots=True)
class GatewayPath:
    """The built components a request goes through (a subset of ``Services``)."""

    keys: KeyCache
    catalog: Catalog
    admission: Admitter
    accounting: Accounting
    runner: AttemptRunner
    metrics: Metrics
    redactor: Redactor


@dataclass(slots=True)
class Spent:
    """What a job attempt's model calls cost so far (kept when the attempt fails half-way)."""

    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


async def ask_as_key(
    path: GatewayPath,
    *,
    key_name: str,
    model: str,
    turns: Sequence[Turn],
    params: Mapping[str, Any],
    request_id: str,
    spent: Spent,
) -> str:
    """The model's text answer to ``turns``, asked on behalf of ``key_name``."""
    ctx = RequestContext(request_id, ROUTE, "openai")
    ctx.key_name = key_name
    ctx.model_requested = model
    spent.calls += 1
    try:
        key = path.keys.by_name(key_name)
        req = chat_request(model, turns, params)
        route = path.catalog.resolve(model, key.allowed_models)
        path.keys.check_model(key, route.name)
        ticket = await path.admission.admit(key, route, req, {})
        ctx.capacity = ticket.capacity
        ctx.waited_seconds += ticket.queued_seconds
        try:
            await path.accounting.reserve(ctx, key, req, ticket.route)
            answer = await fetch_answer(ctx, req, ticket.route, path.runner)
        finally:
            path.admission.finish(ticket, ctx)
    except GatewayError as err:
        ctx.status, ctx.outcome, ctx.error_kind = err.status, "error", err.kind
        raise
    except (asyncio.CancelledError, TimeoutError):
        ctx.status, ctx.outcome, ctx.error_kind = 504, "error", "timeout"
        raise
    finally:
        path.metrics.observe(ctx)
        path.accounting.finish(ctx)
        spent.cost_usd += ctx.cost_usd
        if ctx.usage is not None:
            spent.input_tokens += ctx.usage.prompt_total
            spent.output_tokens += ctx.usage.output_tokens
    return "".join(block.text for block in answer.content if isinstance(block, TextBlock))


def chat_request(model: str, turns: Sequence[Turn], params: Mapping[str, Any]) -> ChatRequest:
    stop = params.get("stop")
    return ChatRequest(
        dialect="openai",
        model=model,
        messages=tuple(Message(t.role, (TextBlock(t.text),)) for t in turns),
        max_tokens=params.get("max_tokens"),
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
    )
