"""The admin API under ``/admin``: authenticated by an admin token, JSON in and out.

Authentication is ``Authorization: Bearer rgadmin-...``, checked against the key cache's admin
token hashes; a gateway API key is not an admin token and gets 401 like any other wrong token.
No business logic lives here: handlers call the key store, the ledger store and the reports.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from relaygate.admin import alerts, cache, keys, usage
from relaygate.admin.http import AdminError, send_admin_error
from relaygate.auth.keys import bearer_token
from relaygate.core.errors import GatewayError, clip
from relaygate.services import Services
from relaygate.store.errors import DuplicateNameError, StoreError, StoreUnavailableError
from relaygate.web.request import Request, Send

logger = logging.getLogger("relaygate.admin")
PREFIX = "/admin"
KEYS_PREFIX = "/admin/keys/"
Route = Callable[[Services, Request, Send], Awaitable[None]]
KeyRoute = Callable[[Services, Request, Send, str], Awaitable[None]]

ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/admin/keys"): keys.list_keys,
    ("POST", "/admin/keys"): keys.create_key,
    ("GET", "/admin/usage"): usage.usage,
    ("GET", "/admin/usage/requests"): usage.requests,
    ("GET", "/admin/bill"): usage.bill,
    ("GET", "/admin/pricing"): usage.pricing,
    ("GET", "/admin/ledger"): usage.ledger,
    ("DELETE", "/admin/cache"): cache.clear_cache,
    ("GET", "/admin/alerts"): alerts.alerts,
}


async def _get_key(services: Services, request: Request, send: Send, name: str) -> None:
    await keys.get_key(services, send, name)


async def _revoke_key(services: Services, request: Request, send: Send, name: str) -> None:
    await keys.revoke_key(services, send, name)


async def _show_balance(services: Services, request: Request, send: Send, name: str) -> None:
    await keys.show_balance(services, send, name)


# (method, suffix after the key name) -> handler; "" is the key itself.
KEY_ROUTES: dict[tuple[str, str], KeyRoute] = {
    ("GET", ""): _get_key,
    ("PATCH", ""): keys.update_key,
    ("DELETE", ""): _revoke_key,
    ("POST", "/top-up"): keys.top_up,
    ("GET", "/balance"): _show_balance,
}
_SUFFIXES = ("/top-up", "/balance")
# Answered from memory, so they work while the database is unreachable since start-up.
WITHOUT_DATABASE = frozenset(
    {
        ("GET", "/admin/pricing"),
        ("GET", "/admin/ledger"),
        ("DELETE", "/admin/cache"),
        ("GET", "/admin/alerts"),
    }
)
DATABASE_DOWN = (
    "The database is unreachable (the gateway started without it and keeps retrying); this call "
    'needs it. Retry once GET /readyz reports "database": "ok".'
)


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def handle_admin(services: Services, request: Request, send: Send) -> None:
    """Authenticate, dispatch, and render every failure as the admin API's JSON error."""
    try:
        services.keys.authenticate_admin(bearer_token(request.headers))
    except GatewayError as err:
        await send_admin_error(send, AdminError(err.status, err.kind, err.message, err.param))
        return
    await serve_admin(services, request, send)


async def serve_admin(services: Services, request: Request, send: Send) -> None:
    """Answer an admin request whose caller is already known to be the admin (the dashboard's
    session, or ``handle_admin``'s token check): dispatch, and render every failure as JSON."""
    try:
        _require_database(services, request)
        await _dispatch(services, request, send)
    except AdminError as err:
        await send_admin_error(send, err)
    except GatewayError as err:
        await send_admin_error(send, AdminError(err.status, err.kind, err.message, err.param))
    except DuplicateNameError as err:
        await send_admin_error(send, AdminError(409, "conflict", f"name: {err}", "name"))
    except StoreUnavailableError:
        logger.exception("admin request failed: store unavailable")
        message = "The database is unavailable; retry shortly"
        await send_admin_error(send, AdminError(503, "unavailable", message))
    except StoreError:
        logger.exception("admin request failed")
        await send_admin_error(send, AdminError(500, "internal", "Internal gateway error"))


async def _dispatch(services: Services, request: Request, send: Send) -> None:
    path = request.path.rstrip("/") or "/"
    route = ROUTES.get((request.method, path))
    if route is not None:
        await route(services, request, send)
        return
    if path.startswith(KEYS_PREFIX) and len(path) > len(KEYS_PREFIX):
        name, suffix = _split_key_path(path[len(KEYS_PREFIX) :])
        handler = KEY_ROUTES.get((request.method, suffix))
        if handler is not None:
            await handler(services, request, send, name)
            return
        if any(method_suffix == suffix for _, method_suffix in KEY_ROUTES):
            method = clip(request.method)
            raise AdminError(405, "method_not_allowed", f"{method} is not allowed here")
    raise AdminError.not_found(f"No admin route for {clip(request.method)} {clip(request.path)}")


def _require_database(services: Services, request: Request) -> None:
    route = (request.method, request.path.rstrip("/"))
    if not services.database.reachable and route not in WITHOUT_DATABASE:
        raise AdminError(503, "unavailable", DATABASE_DOWN)


def _split_key_path(rest: str) -> tuple[str, str]:
    for suffix in _SUFFIXES:
        if rest.endswith(suffix) and len(rest) > len(suffix):
            return rest[: -len(suffix)], suffix
    return rest, ""
