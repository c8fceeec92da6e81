"""Server-rendered HTML (Jinja2, autoescaped) and the static assets shipped in the package."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from relaygate.web.request import Send
from relaygate.web.responses import Headers, send_body

STATIC_PREFIX = "/dashboard/static/"
NO_VALUE = "\N{EM DASH}"
# No inline script anywhere: every script is a file of ours. Inline style attributes stay
# allowed for uPlot, which sizes its elements through them.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
PAGE_HEADERS: Headers = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".LICENSE": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _load_assets() -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    for entry in (resources.files("relaygate.dashboard") / "static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if not entry.is_file() or suffix not in CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        etag = hashlib.sha256(body).hexdigest()[:16]
        assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], etag)
    return assets


ASSETS = _load_assets()


def asset_url(name: str) -> str:
    """The asset's URL, versioned by its content so it can be cached for long."""
    return f"{STATIC_PREFIX}{name}?v={ASSETS[name].etag}"


async def send_asset(send: Send, name: str, if_none_match: str | None) -> bool:
    """Send a static asset (304 when the browser has it); False when there is no such asset."""
    asset = ASSETS.get(name)
    if asset is None:
        return False
    etag = f'"{asset.etag}"'.encode()
    headers: Headers = [
        (b"cache-control", b"public, max-age=86400"),
        (b"etag", etag),
        (b"x-content-type-options", b"nosniff"),
    ]
    if if_none_match is not None and if_none_match.encode() == etag:
        await send_body(send, 304, b"", headers)
    else:
        await send_body(
            send, 200, asset.body, [(b"content-type", asset.content_type.encode()), *headers]
        )
    return True


def _number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    return f"{value:,.{digits}f}"


def _money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return NO_VALUE
    symbol = {"USD": "$", "CNY": "¥"}.get(currency, currency + " ")
    digits = 4 if abs(value) < 1 else 2
    return f"{symbol}{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:,.1f} ms"


TEMPLATES = Environment(
    loader=PackageLoader("relaygate.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(number=_number, money=_money, percent=_percent, ms=_ms)
TEMPLATES.globals["asset"] = asset_url


def render(template: str, **context: Any) -> bytes:
    return TEMPLATES.get_template(template).render(**context).encode()


async def send_page(
    send: Send, body: bytes, status: int = 200, extra: Headers | None = None
) -> None:
    await send_body(send, status, body, [*PAGE_HEADERS, *(extra or ())])


async def redirect(send: Send, location: str, extra: Headers | None = None) -> None:
    """A 303 See Other: after a form post the browser GETs ``location``."""
    headers: Headers = [(b"location", location.encode()), (b"cache-control", b"no-store")]
    await send_body(send, 303, b"", [*headers, *(extra or ())])
