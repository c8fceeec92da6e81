"""``DELETE /admin/cache``: forget cached answers, all of them, one key's or one model's.

``?key=NAME`` clears that key's own entries (not the ``scope: global`` ones it reads), ``?model=``
one model's (a name or alias); both together clear their intersection. With the Redis backend
this clears every process's cache; with the memory backend only this process's.
"""

from __future__ import annotations

from relaygate.admin.http import AdminError, query_params, send_ok
from relaygate.cache import CacheUnavailableError
from relaygate.core.errors import clip
from relaygate.services import Services
from relaygate.web.request import Request, Send

PARAMS = frozenset({"key", "model"})


async def clear_cache(services: Services, request: Request, send: Send) -> None:
    params = query_params(request, PARAMS)
    cache = services.cache
    if cache is None:
        raise AdminError.not_found("The response cache is off (no model or key enables it)")
    model = params.get("model")
    if model is not None:
        route = services.catalog.get(model)
        if route is None:
            raise AdminError.bad_request(f"model: no model or alias named {clip(model)!r}", "model")
        model = route.name
    key = params.get("key")
    if key == "":
        raise AdminError.bad_request("key: give a key name", "key")
    try:
        removed = await cache.backend.clear(scope=key, model=model)
    except CacheUnavailableError as err:
        raise AdminError(503, "unavailable", str(err)) from None
    await send_ok(
        send, {"removed": removed, "backend": cache.backend.name, "key": key, "model": model}
    )
