"""A run's HTTP side: state, agents, Prometheus metrics and runtime changes (aiohttp, on a
thread of its own).

A snapshot (``snapshot``) is taken on the coordinator's thread every quarter second and
published whole, so the server never reads the state machine while it changes. Routes: ``GET
/farm`` (run, state, rate, totals, latency, agents, and every scenario with its model and its
numbers now), ``PATCH /farm`` with any of ``{"scenario": NAME, "rps": R, "users": N,
"parallel": N, "overtime": N}`` (one scenario changes at one announced instant on every agent,
a new plan epoch, answered with the epoch; ``scenario`` may be left out in a run of one),
Gofherd's ``GET /herd`` and ``PATCH /herd {"num": N}`` (the drain's lanes: 0 pauses it, more
resumes and grows it), ``GET /agents``, ``GET /metrics`` (Prometheus), the live page ``GET
/``. A body that is not valid (empty, not JSON, unknown keys, wrong types, negative, NaN) gets
400 with a JSON error and changes nothing; a change the run cannot take gets 409. Off by
default; loopback by default; any other address needs a token, sent as ``Authorization: Bearer
TOKEN`` (the farm port needs keys for the same reason): ``parse_address`` holds that rule for the
command line and Python alike.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from pusher_farm.cluster.control.changes import farm_changes, herd_change
from pusher_farm.core.tally import series_row
from pusher_farm.errors import InvalidOption

__all__ = ["ControlServer", "parse_address"]


def parse_address(text: str, token: str | None) -> tuple[str, int]:
    """``HOST:PORT`` to serve on; a non-loopback host without a token is refused (the farm
    port needs keys for the same reason)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidOption(f"cannot read the address {text!r}: give HOST:PORT, e.g. 127.0.0.1:8642")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        raise InvalidOption(
            f"serving HTTP on {text} (beyond loopback) needs a token, sent as a bearer token "
            "(--http-token; control_token= from Python)"
        )
    return host, int(port)


#: merged windows the live page can fetch (an hour at 1 s windows)
_WINDOWS_KEPT = 3600

_HIDDEN = ("latency_bounds_s", "latency_buckets", "latency_count", "latency_sum_s", "agent_states")


class ControlServer:
    """Serves the latest published snapshot (see the module docstring).

    Resource handling: ``start`` runs the server on a daemon thread with its own event loop;
    ``close`` stops it and joins the thread."""

    def __init__(
        self,
        host: str,
        port: int,
        token: str | None = None,
        render: Callable[[dict[str, Any]], bytes] | None = None,
        page: str | None = None,
        changes: bool = True,
    ) -> None:
        self.host, self.port, self.token = host, port, token
        #: the Prometheus exposition of a snapshot (``report.metrics.render_metrics``)
        self.render = render
        #: the live page served at ``/`` (``report.dashboard.page()``)
        self.page = page
        #: PATCH /farm is served (a coordinator answers it; an agent's server has none)
        self.changes = changes
        self.published: dict[str, Any] = {}
        #: changes asked over HTTP, for the coordinator's thread: (changes, answer(info, error))
        self._asks: queue.SimpleQueue[tuple[dict[str, Any], Callable[[Any, str | None], None], list[bool]]] = (
            queue.SimpleQueue()
        )
        #: calls started in the last merged window (its achieved rate)
        self.last_started = 0
        #: the requested rate at a time of the run (the coordinator sets it: its profile)
        self.rate_at: Callable[[float], float] = lambda t: 0.0
        #: the latest merged windows, for the live page (bounded)
        self.windows: deque[dict[str, Any]] = deque(maxlen=_WINDOWS_KEPT)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: Any = None

    def start(self) -> int:
        """Serve; the port bound (the one asked, or a free one for 0)."""
        self._thread = threading.Thread(target=self._serve, name="control-http", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise InvalidOption(f"cannot serve HTTP on {self.host}:{self.port}: {self._error}")
        return self.port

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:  # the address taken, or not ours
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    async def _open(self) -> None:
        from aiohttp import web

        @web.middleware
        async def auth(request: Any, handler: Any) -> Any:
            return await self._auth(request, handler)

        app = web.Application(middlewares=[auth])
        app.router.add_get("/", self._page)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_get("/windows", self._windows)
        app.router.add_get("/farm", self._farm)
        app.router.add_get("/herd", self._herd)
        if self.changes:
            app.router.add_patch("/farm", self._patch)
            app.router.add_patch("/herd", self._patch_herd)
        app.router.add_get("/agents", self._agents)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]

    def take(self) -> list[tuple[dict[str, Any], Callable[[Any, str | None], None]]]:
        """The changes asked since the last call (the coordinator's thread answers each)."""
        out = []
        while True:
            try:
                changes, answer, abandoned = self._asks.get_nowait()
            except queue.Empty:
                return out
            if not abandoned[0]:
                out.append((changes, answer))

    def on_window(self, window: Any) -> None:
        """A merged window of the whole farm (a coordinator listener)."""
        self.last_started = window.started
        mid = window.start + window.length / 2
        row = series_row(window.start, window.length, window.started, window.succeeded, window.failed,
                         window.canceled, window.latency)  # fmt: skip
        self.windows.append({**row, "requested": self.rate_at(mid), "achieved": window.started / window.length})

    def close(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- routes -----------------------------------------------------------------------------

    async def _auth(self, request: Any, handler: Any) -> Any:
        from aiohttp import web

        if self.token and request.path not in ("/", "/favicon.ico"):  # the page holds no data
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return web.json_response({"error": "a bearer token is needed (Authorization: Bearer TOKEN)"},
                                         status=401)  # fmt: skip
        return await handler(request)

    def _public(self) -> dict[str, Any]:
        return {k: v for k, v in self.published.items() if k not in _HIDDEN}

    async def _farm(self, request: Any) -> Any:
        from aiohttp import web

        if not self.published:
            return web.json_response({"error": "no run state yet: the coordinator is starting"}, status=503)
        return web.json_response(self._public(), dumps=lambda d: json.dumps(d, default=str))

    async def _patch(self, request: Any) -> Any:
        from aiohttp import web

        try:
            changes = farm_changes(await request.read())
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        info, error, status = await self._ask(changes)
        if error is not None:
            return web.json_response({"error": error}, status=status)
        return web.json_response({"epoch": info})

    async def _ask(self, changes: dict[str, Any]) -> tuple[Any, str | None, int]:
        """Hand ``changes`` to the coordinator's thread and wait for its answer: (the epoch,
        None, 200), or (None, why, 409), or (None, why, 503) when it did not answer in time."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[Any, str | None]] = loop.create_future()

        def answer(info: Any, error: str | None) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result((info, error)))

        abandoned = [False]
        self._asks.put((changes, answer, abandoned))
        try:
            info, error = await asyncio.wait_for(done, 5.0)
        except TimeoutError:
            abandoned[0] = True  # the coordinator must not apply what was answered as failed
            return None, "the coordinator did not answer in time", 503
        return info, error, 409 if error is not None else 200

    def _drain(self) -> tuple[dict[str, Any] | None, str]:
        """The run's one drain scenario (its published row), or why there is none to speak of."""
        drains = [s for s in self.published.get("scenarios", []) if "parallel" in s]
        if len(drains) == 1:
            return drains[0], ""
        if not drains:
            return None, "the run has no drain (a scenario with --drain and a feed): it has no herd"
        return None, 'the run has several drains: change one with PATCH /farm {"scenario": NAME, "parallel": N}'

    async def _herd(self, request: Any) -> Any:
        from aiohttp import web

        if not self.published:
            return web.json_response({"num": 0, "msg": "no run state yet: the coordinator is starting"}, status=503)
        drain, why = self._drain()
        if drain is None:
            return web.json_response({"num": 0, "msg": why}, status=404)
        return web.json_response({"num": drain["parallel"], "msg": "success"})

    async def _patch_herd(self, request: Any) -> Any:
        from aiohttp import web

        drain, why = self._drain()
        current = 0 if drain is None else drain["parallel"]
        try:
            num = herd_change(await request.read())
        except ValueError as exc:
            return web.json_response({"num": current, "msg": str(exc)}, status=400)
        if drain is None:
            return web.json_response({"num": current, "msg": why}, status=404)
        info, error, status = await self._ask({"scenario": drain["name"], "parallel": num})
        if error is not None:
            return web.json_response({"num": current, "msg": error}, status=status)
        return web.json_response({"num": num, "msg": "success", "epoch": info})

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        if self.page is None:
            return web.Response(status=404, text="no live page\n")
        return web.Response(text=self.page, content_type="text/html")

    async def _no_icon(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(status=204)

    async def _windows(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(list(self.windows))

    async def _agents(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response(self.published.get("agents", []))

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        if not self.published or self.render is None:
            return web.Response(status=503, text="no run state yet\n")
        body = self.render(self.published)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
