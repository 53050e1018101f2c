"""The coordinator's HTTP side: state, agents and Prometheus metrics (aiohttp, its own thread).

``snapshot(coordinator)`` is taken on the coordinator's thread (``Coordinator.step``, every
quarter second) and published whole, so the server never reads the state machine while it
changes. Routes: ``GET /farm`` (run, state, rate, overtime, totals, latency, agents), ``PATCH
/farm`` with ``{"rps": R, "overtime": N}`` (either or both: the whole farm changes at one
announced instant, a new plan epoch, answered with the epoch), ``GET /agents``, ``GET
/metrics`` (Prometheus). A body that is not valid (empty, not JSON, unknown keys, wrong types,
negative, NaN) gets 400 with a JSON error and changes nothing. Off by default; loopback by default; any other
address needs a token, sent as ``Authorization: Bearer TOKEN`` (the farm port needs keys for
the same reason).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pusher_farm.core.tally import series_row
from pusher_farm.errors import InvalidOption

if TYPE_CHECKING:
    from pusher_farm.cluster.coordinator import Coordinator

__all__ = ["LATENCY_BOUNDS_S", "AgentMetrics", "ControlServer", "parse_address", "snapshot", "totals_snapshot"]

#: the latency buckets a snapshot counts (seconds), for a Prometheus histogram
LATENCY_BOUNDS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def parse_address(text: str, token: str | None) -> tuple[str, int]:
    """``HOST:PORT`` to serve on; a non-loopback host without a token is refused."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidOption(f"--http {text!r}: give HOST:PORT, e.g. 127.0.0.1:8642")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        raise InvalidOption(f"--http {text}: serving beyond loopback needs --http-token (sent as a bearer token)")
    return host, int(port)


def totals_snapshot(
    total: Any, achieved_rps: float, requested_rps: float, agent_states: dict[str, int]
) -> dict[str, Any]:
    """The part of a snapshot that ``/metrics`` renders, from a window of totals."""
    latency = total.latency
    return {
        "requested_rps": requested_rps,
        "totals": {
            "scheduled": total.started + total.canceled,
            "started": total.started,
            "succeeded": total.succeeded,
            "failed": total.failed,
            "canceled": total.canceled,
            "in_flight": max(0, total.started - total.succeeded - total.failed),
        },
        "errors": dict(total.errors),
        "achieved_rps": achieved_rps,
        "latency_ms": latency.summary_ms() if latency.total else {},
        "agent_states": agent_states,
        "latency_bounds_s": list(LATENCY_BOUNDS_S),
        "latency_buckets": latency.cumulative([int(b * 1e6) for b in LATENCY_BOUNDS_S]),
        "latency_count": latency.total,
        "latency_sum_s": latency.sum / 1e6,
    }


def snapshot(coord: Coordinator) -> dict[str, Any]:
    """What the server shows, as plain data (taken on the coordinator's thread)."""
    state = coord.state
    tally = coord.aggregator.tally
    total = tally.total
    agents = []
    states: dict[str, int] = {}
    for a in state.agents.values():
        states[a.state.value] = states.get(a.state.value, 0) + 1
        agents.append({
            "id": a.id, "name": a.name, "host": a.host, "state": a.state.value, "share": round(a.share, 6),
            "cpu_percent": a.stats.get("cpu"), "rtt_ms": None if a.rtt != a.rtt else round(a.rtt * 1000, 3),
            "clock_offset_ms": round(a.offset * 1000, 3),
        })  # fmt: skip
    policy = coord.spec.policy
    elapsed = 0.0 if state.start_at is None else max(0.0, time.monotonic() - state.start_at)
    requested = sum(c.profile.rate_at(elapsed) for c in coord.spec.configs if c.profile is not None)
    achieved = coord.control.last_started / tally.length if coord.control is not None else 0.0
    return {
        "run": state.run_id,
        "state": state.phase.value,
        "target": policy.target,
        "overtime": policy.overtime,
        "elapsed_s": elapsed,
        "agents": agents,
        **totals_snapshot(total, achieved, requested, states),
    }


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
            raise InvalidOption(f"--http {self.host}:{self.port}: cannot serve there: {self._error}")
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
        if self.changes:
            app.router.add_patch("/farm", self._patch)
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
            changes = _changes(await request.read())
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
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
            return web.json_response({"error": "the coordinator did not answer in time"}, status=503)
        if error is not None:
            return web.json_response({"error": error}, status=409)
        return web.json_response({"epoch": info})

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


#: the highest rate a PATCH may ask for (calls per second, the whole farm)
_MOST_RPS = 1e8


def _changes(body: bytes) -> dict[str, Any]:
    """The changes a PATCH body asks for; ``ValueError`` saying what is wrong with it."""
    if not body.strip():
        raise ValueError('an empty body changes nothing: send {"rps": R} and/or {"overtime": N}')
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict) or not data:
        raise ValueError('send a JSON object: {"rps": R} and/or {"overtime": N}')
    unknown = sorted(set(data) - {"rps", "overtime"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}: only rps and overtime change at runtime")
    out: dict[str, Any] = {}
    if "rps" in data:
        rps = data["rps"]
        try:  # NaN fails the bounds below; an integer too large for a float is over them
            value = float(rps) if isinstance(rps, (int, float)) and not isinstance(rps, bool) else math.nan
        except OverflowError:
            value = math.inf
        if not 0 < value <= _MOST_RPS:
            raise ValueError(f"rps must be a number above 0 and at most {_MOST_RPS:g}, got {rps!r}")
        out["rps"] = value
    if "overtime" in data:
        overtime = data["overtime"]
        if isinstance(overtime, bool) or not isinstance(overtime, int) or not 0 <= overtime <= 1_000_000:
            raise ValueError(f"overtime must be a whole number from 0 to 1000000, got {overtime!r}")
        out["overtime"] = overtime
    return out


class AgentMetrics:
    """An agent's own ``/metrics`` (``farm agent --metrics HOST:PORT``): the windows its runs
    closed, summed, published to a ``ControlServer`` after each (on the executor's thread)."""

    def __init__(self, server: ControlServer) -> None:
        from pusher_farm.core.window import Window

        self.server = server
        self.total = Window(index=-1, start=0.0, length=1.0)

    def on_window(self, window: Any, requested_rps: float) -> None:
        self.total.merge(window)
        achieved = window.started / window.length if window.length else 0.0
        self.server.published = totals_snapshot(self.total, achieved, requested_rps, {"running": 1})
