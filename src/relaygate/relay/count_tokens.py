"""Token counting: asked of the first deployment whose upstream can count.

Failures here never count against a deployment's health: editors fire dozens of these at once.
"""

from __future__ import annotations

import logging
import time

from relaygate.core.context import RequestContext
from relaygate.core.errors import UpstreamError
from relaygate.core.types import ChatRequest
from relaygate.routing.catalog import ModelRoute

logger = logging.getLogger("relaygate.count_tokens")


async def count_tokens(ctx: RequestContext, req: ChatRequest, route: ModelRoute) -> int | None:
    """The upstream's count, or None when no deployment can count (the caller then estimates)."""
    for dep in route.deployments:
        upstream = dep.provider.build_count_tokens(req, dep.target, ctx.request_id)
        if upstream is None:
            continue
        ctx.deployment = dep.id
        ctx.model_used = dep.model_name
        started = time.perf_counter()
        try:
            response = await dep.transport.send(upstream, dep.timeouts)
            body = await response.read()
        except UpstreamError as failure:
            fields = {"request_id": ctx.request_id, "error": failure.message}
            logger.warning("count_tokens upstream failed", extra={"fields": fields})
            continue
        finally:
            ctx.upstream_seconds += time.perf_counter() - started
        if response.status >= 400:
            err = dep.provider.classify_error(response.status, response.headers, body)
            if err.retryable:
                continue
            raise err
        return dep.provider.parse_count_tokens(body)
    return None
