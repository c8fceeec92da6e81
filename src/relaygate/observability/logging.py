"""Structured JSON logging: one line per request, request ids, no secrets."""

from __future__ import annotations

import atexit
import logging
import sys
import time
from typing import Any, TextIO

import orjson

from relaygate.core.context import RequestContext
from relaygate.core.errors import CALLER_TEXT_LIMIT, clip
from relaygate.core.redact import Redactor
from relaygate.observability.request_log import REQUEST_LINE_HEAD, RequestLog, Sink

# Set by ``configure_logging`` (the CLI's processes): request lines then skip stdlib logging.
# Without it (an embedding application, tests) they are records of the "relaygate.request" logger.
_request_log: RequestLog | None = None


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
    install_request_log(RequestLog(stream_sink(sys.stderr)))


def install_request_log(request_log: RequestLog | None) -> None:
    """Send request lines to ``request_log`` (None: back to the "relaygate.request" logger)."""
    global _request_log
    previous, _request_log = _request_log, request_log
    if previous is not None:
        previous.close()
        atexit.unregister(previous.close)
    if request_log is not None:
        atexit.register(request_log.close)


def flush_request_log() -> None:
    """Write the queued request lines now (at shutdown: none is lost when the process ends)."""
    if _request_log is not None:
        _request_log.flush()


def stream_sink(stream: TextIO) -> Sink:
    buffer = getattr(stream, "buffer", None)
    if buffer is None:

        def write_text(data: bytes) -> None:
            stream.write(data.decode())
            stream.flush()

        return write_text

    def write(data: bytes) -> None:
        buffer.write(data)
        buffer.flush()

    return write


def redact_logs(redactor: Redactor) -> None:
    """Keep ``redactor``'s secrets out of every line the gateway's JSON handlers write."""
    for handler in logging.getLogger("relaygate").handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.redactor = redactor
    if _request_log is not None:
        _request_log.redactor = redactor or None


def request_fields(ctx: RequestContext, elapsed: float | None = None) -> dict[str, Any]:
    """The request line's own fields (what follows ``ts``, ``level``, ``logger`` and ``msg``)."""
    entry = _request_line("", ctx, ctx.elapsed() if elapsed is None else elapsed)
    for name in _LINE_HEAD:
        del entry[name]
    return entry


_LINE_HEAD = ("ts", *REQUEST_LINE_HEAD)


def _request_line(ts: str, ctx: RequestContext, elapsed: float) -> dict[str, Any]:
    """The whole request line, built as one dict (the installed log's line: no second dict
    merged into a first; a refusal's line is built ~1,500 times a second per core)."""
    # Milliseconds to 2 (3) decimals as ``round`` gives them but for exact ties in the last
    # digit: ``int(x + 0.5) / scale`` of a non-negative time costs a fraction of ``round(x, n)``
    # (three of them were ~4% of a refusal's instructions on the event loop).
    upstream = ctx.upstream_seconds
    overhead = elapsed - upstream - ctx.waited_seconds  # ctx.overhead_seconds, inlined
    model = ctx.model_requested
    line: dict[str, Any] = {
        "ts": ts,
        "level": "info",
        "logger": "relaygate.request",
        "msg": "request",
        "request_id": ctx.request_id,
        "route": ctx.route,
        "key": ctx.key_name,
        "model": model if model is None or len(model) <= CALLER_TEXT_LIMIT else clip(model),
        "model_used": ctx.model_used,
        "deployment": ctx.deployment,
        "stream": ctx.stream,
        "status": ctx.status,
        "outcome": ctx.outcome,
        "attempts": len(ctx.attempts),
        "latency_ms": int(elapsed * 100_000.0 + 0.5) / 100.0,
        "upstream_ms": int(upstream * 100_000.0 + 0.5) / 100.0,
        "overhead_ms": int(overhead * 1_000_000.0 + 0.5) / 1000.0 if overhead > 0.0 else 0.0,
    }
    first_token_at = ctx.first_token_at
    if first_token_at is not None:
        ttft = first_token_at - ctx.started
        line["ttft_ms"] = int(ttft * 100_000.0 + 0.5) / 100.0 if ttft > 0.0 else 0.0
    if ctx.error_kind:
        line["error"] = ctx.error_kind
    usage = ctx.usage
    if usage is not None:
        line["input_tokens"] = usage.input_tokens
        line["output_tokens"] = usage.output_tokens
        line["cache_read_tokens"] = usage.cache_read_tokens
        line["cache_write_tokens"] = usage.cache_write_tokens
    if ctx.cost_usd:
        line["cost_usd"] = round(ctx.cost_usd, 8)
    if ctx.cache_status is not None:
        line["cache"] = ctx.cache_status
        if ctx.coalesced_with is not None:
            line["coalesced_with"] = ctx.coalesced_with
    return line


def log_request(logger: logging.Logger, ctx: RequestContext, elapsed: float | None = None) -> None:
    """The request's line (``elapsed``: its ``ctx.elapsed()``, when already read). To the
    installed request log, its fields go straight into the line's one dict."""
    if logger.isEnabledFor(logging.INFO):
        request_log = _request_log
        if request_log is not None:
            if not request_log.full():
                line = _request_line(
                    request_log.timestamp(), ctx, ctx.elapsed() if elapsed is None else elapsed
                )
                request_log.write_entry(line)
        else:
            logger.info("request", extra={"fields": request_fields(ctx, elapsed)})
