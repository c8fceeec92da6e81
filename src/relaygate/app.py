"""create_app(settings) -> the ASGI app. The lifespan builds Services and drains them at shutdown;
requests are answered by the HTTP edge's route table (``relaygate.edge.routes``).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

from relaygate.edge.routes import dispatch
from relaygate.observability.logging import configure_logging, flush_request_log
from relaygate.services import Services, build_services
from relaygate.settings import Settings, config_path_from_env, load_settings
from relaygate.web.request import Receive, Request, Scope, Send
from relaygate.web.responses import send_body

logger = logging.getLogger("relaygate")
OnStarted = Callable[[Services], None]


class RelaygateApp:
    """The ASGI callable. ``services`` exists between lifespan start-up and shutdown."""

    def __init__(self, settings: Settings, on_started: OnStarted | None = None) -> None:
        self.settings = settings
        self.services: Services | None = None
        self._on_started = on_started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self.services
        request = Request(scope, receive)
        if services is None:
            await send_body(send, 503, b"starting", [(b"content-type", b"text/plain")])
            return
        await dispatch(services, request, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.services = await build_services(self.settings)
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                _settle_heap()
                if self._on_started is not None:
                    self._on_started(self.services)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.services is not None:
                    await self.services.close()
                    self.services = None
                flush_request_log()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings, on_started: OnStarted | None = None) -> RelaygateApp:
    """Build the app; nothing is opened until the ASGI lifespan starts it."""
    return RelaygateApp(settings, on_started)


def create_app_from_env() -> RelaygateApp:
    """The app of one worker process of ``relaygate serve --workers N`` (a uvicorn factory).

    ``serve`` resolves its options once and hands them to the workers as ``RELAYGATE_*``
    variables (``RELAYGATE_CONFIG`` for the file), read here by ``load_settings``.
    """
    settings = load_settings(config_path_from_env())
    configure_logging(settings.log_level)
    return create_app(settings)


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Tracked objects allocated (net of those freed) before the cycle collector's youngest pass.

CPython's default, 700, is crossed many times a second by the live objects of requests in flight
alone (a few hundred each): every pass then walks them and promotes them, to be walked again by
the older generations after they are already garbage. Request objects are freed by reference
counting, not by the collector, so at 20,000 the collector stays idle at ordinary concurrency
(none ran in 14 s of saturation with 20 clients, against ~100 passes a second and 2-3% of the CPU
at 700) and a burst of hundreds of requests in flight meets a pass a few times, each bounded to
walking ~20,000 objects (under a millisecond). Cyclic garbage still goes within that bound.
"""


def _settle_heap() -> None:
    """Move everything built at start-up out of the collector's reach, and let it run rarely.

    Under load, full collections that walk the long-lived start-up objects (modules, settings,
    catalog, caches) took ~26 ms each, every ~1.5 s: enough on their own to break the p99 target.
    Freezing them once leaves the collector only the per-request garbage.
    """
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(YOUNG_COLLECTION_THRESHOLD, young), older, oldest)
