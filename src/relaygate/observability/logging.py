"""Structured JSON logging: one line per request, request ids, no secrets."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from relaygate.core.context import RequestContext
from relaygate.core.errors import clip
from relaygate.core.redact import Redactor


class JsonFormatter(logging.Formatter):
    # Upstream credentials to keep out of every line (set once services are built).
    redactor: Redactor | None = None

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        line = orjson.dumps(entry, default=str).decode()
        return line if self.redactor is None else self.redactor.text(line)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("relaygate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def redact_logs(redactor: Redactor) -> None:
    """Keep ``redactor``'s secrets out of every line the gateway's JSON handlers write."""
    for handler in logging.getLogger("relaygate").handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.redactor = redactor


def request_fields(ctx: RequestContext) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        "route": ctx.route,
        "key": ctx.key_name,
        "model": None if ctx.model_requested is None else clip(ctx.model_requested),
        "model_used": ctx.model_used,
        "deployment": ctx.deployment,
        "stream": ctx.stream,
        "status": ctx.status,
        "outcome": ctx.outcome,
        "attempts": len(ctx.attempts),
        "latency_ms": round(ctx.elapsed() * 1000, 2),
        "upstream_ms": round(ctx.upstream_seconds * 1000, 2),
        "overhead_ms": round(ctx.overhead_seconds() * 1000, 3),
    }
    ttft = ctx.ttft_seconds()
    if ttft is not None:
        fields["ttft_ms"] = round(ttft * 1000, 2)
    if ctx.error_kind:
        fields["error"] = ctx.error_kind
    if ctx.usage is not None:
        fields["input_tokens"] = ctx.usage.input_tokens
        fields["output_tokens"] = ctx.usage.output_tokens
        fields["cache_read_tokens"] = ctx.usage.cache_read_tokens
        fields["cache_write_tokens"] = ctx.usage.cache_write_tokens
    if ctx.cost_usd:
        fields["cost_usd"] = round(ctx.cost_usd, 8)
    if ctx.cache_status is not None:
        fields["cache"] = ctx.cache_status
        if ctx.coalesced_with is not None:
            fields["coalesced_with"] = ctx.coalesced_with
    return fields


def log_request(logger: logging.Logger, ctx: RequestContext) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info("request", extra={"fields": request_fields(ctx)})
