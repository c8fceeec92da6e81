"""``/dashboard``: login, the session check, CSRF on every post, and the page table.

Every route but the login page and the static assets needs a valid session cookie; without one
the answer is a 303 to the login page. Every POST must carry the session's CSRF token and, when
the browser sends an ``Origin``, come from this host.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from relaygate.core.errors import GatewayError
from relaygate.dashboard import pages_keys, pages_ops, pages_overview, pages_requests, pages_usage
from relaygate.dashboard.render import STATIC_PREFIX, redirect, render, send_asset, send_page
from relaygate.dashboard.session import (
    SessionSigner,
    cookie_value,
    set_cookie_header,
    shared_secret,
)
from relaygate.dashboard.view import MAX_FORM_BYTES, Page, View, parse_pairs
from relaygate.services import Services
from relaygate.store.errors import StoreError
from relaygate.web.request import Request, Send

logger = logging.getLogger("relaygate.dashboard")
PREFIX = "/dashboard"
LOGIN = "/dashboard/login"
LOGOUT = "/dashboard/logout"
# Per gateway home (its secret file): made on the first dashboard request.
_SIGNERS: dict[Path, SessionSigner] = {}


def signer_for(services: Services) -> SessionSigner:
    home = services.settings.resolved_home
    signer = _SIGNERS.get(home)
    if signer is None:
        signer = _SIGNERS[home] = SessionSigner(shared_secret(home))
    return signer


GET_PAGES: dict[str, Page] = {
    "/dashboard": pages_overview.overview,
    "/dashboard/live": pages_overview.live,
    "/dashboard/keys": pages_keys.keys_page,
    "/dashboard/keys/edit": pages_keys.edit_page,
    "/dashboard/usage": pages_usage.usage_page,
    "/dashboard/usage.csv": pages_usage.usage_csv,
    "/dashboard/requests": pages_requests.requests_page,
    "/dashboard/requests/detail": pages_requests.detail_page,
    "/dashboard/jobs": pages_ops.jobs_page,
    "/dashboard/cache": pages_ops.cache_page,
}
POST_ACTIONS: dict[str, Page] = {
    "/dashboard/keys": pages_keys.create_key,
    "/dashboard/keys/update": pages_keys.update_key,
    "/dashboard/keys/top-up": pages_keys.top_up,
    "/dashboard/keys/revoke": pages_keys.revoke_key,
    "/dashboard/jobs/retry": pages_ops.retry_job,
}


def is_dashboard_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def handle_dashboard(services: Services, request: Request, send: Send) -> None:
    path = request.path.rstrip("/") or "/"
    if path.startswith(STATIC_PREFIX) and request.method in ("GET", "HEAD"):
        name = path[len(STATIC_PREFIX) :]
        if not await send_asset(send, name, request.headers.get("if-none-match")):
            await _not_found(send)
        return
    if path == LOGIN:
        await _login(services, request, send)
        return
    signer = signer_for(services)
    session = signer.verify(cookie_value(request.headers.get("cookie")))
    if session is None:
        await redirect(send, LOGIN)
        return
    view = View(services, request, send, session, signer.csrf_token(session))
    view.query = parse_pairs(request.query)
    if request.method == "POST":
        view.form = parse_pairs(await request.body(MAX_FORM_BYTES))
        if not _same_origin(request) or not signer.check_csrf(session, view.form.get("csrf")):
            await send_page(send, render("error.html", message=CSRF_REFUSED), 403)
            return
        if path == LOGOUT:
            await redirect(send, LOGIN, [set_cookie_header("", 0, secure=_secure(request))])
            return
        action = POST_ACTIONS.get(path)
    elif request.method in ("GET", "HEAD"):
        action = GET_PAGES.get(path)
    else:
        action = None
    if action is None:
        await _not_found(send)
        return
    try:
        await action(view)
    except StoreError:
        logger.exception("dashboard page %s failed", path)
        message = "The database is unavailable; retry shortly."
        await send_page(send, render("error.html", message=message), 503)


CSRF_REFUSED = (
    "This form was refused: its security token is missing or out of date. "
    "Reload the page and try again."
)


async def _login(services: Services, request: Request, send: Send) -> None:
    if request.method == "POST":
        form = parse_pairs(await request.body(MAX_FORM_BYTES))
        if not _same_origin(request):
            await send_page(send, render("login.html", error=CSRF_REFUSED), 403)
            return
        try:
            services.keys.authenticate_admin(form.get("token", "").strip() or None)
        except GatewayError as err:
            logger.warning("dashboard login refused: %s", err.kind)
            message = (
                "That is not an admin token."
                if err.status == 401
                else f"Cannot check the token now: {err.message}"
            )
            await send_page(send, render("login.html", error=message), err.status)
            return
        signer = signer_for(services)
        _, value = signer.issue()
        cookie = set_cookie_header(value, signer.lifetime_seconds, secure=_secure(request))
        await redirect(send, PREFIX, [cookie])
        return
    # An htmx poll whose session ended follows the 303 here: send the whole window to login.
    extra = [(b"hx-redirect", LOGIN.encode())] if "hx-request" in request.headers else None
    await send_page(send, render("login.html", error=None), 200, extra)


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" or request.scope.get("scheme") == "https"


def _same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _not_found(send: Send) -> None:
    await send_page(send, render("error.html", message="No such dashboard page."), 404)
