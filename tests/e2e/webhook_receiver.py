"""A local webhook receiver for the alert tests: an aiohttp server on its own thread and loop,
recording every JSON body posted to ``/hook/{name}``; ``/flaky/{name}`` answers 500 to its first
``fail_first`` posts."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Any

from aiohttp import web

from tests.e2e.server import free_port


class WebhookReceiver:
    def __init__(self, fail_first: int = 2) -> None:
        self.port = free_port()
        self.bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.posts: dict[str, int] = defaultdict(int)
        self._fail_first = fail_first
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies[name])

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{name}", self._hook)
        app.router.add_post("/flaky/{name}", self._flaky)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.bodies[request.match_info["name"]].append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _flaky(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        with self._lock:
            self.posts[name] += 1
            if self.posts[name] <= self._fail_first:
                return web.Response(status=500, text="try again")
        return await self._hook(request)
