"""The coordinator: one farm run over ZeroMQ, from the first hello to the merged report.

The decisions live in ``CoordinatorState``; this module only moves messages between the
socket, the state machine and the aggregator, and turns the result into a ``Report``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from pusher_farm.cluster.aggregator import Aggregator
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.cluster.security import CoordinatorKeys
from pusher_farm.cluster.state import Accept, AgentState, CoordinatorState, Finish, Log, Send, Timing
from pusher_farm.cluster.transport import RouterTransport
from pusher_farm.core.report import Report
from pusher_farm.core.window import Window

__all__ = ["Coordinator", "WindowListener"]

log = logging.getLogger("pusher_farm.cluster")

#: a coordinator-side listener: called with each merged window of the whole farm
WindowListener = Callable[[Window], None]

_TICK = 0.05


class Coordinator:
    """Binds ``bind``, waits for ``expect`` agents, runs ``spec`` on them and reports.

    ``listeners`` receive every merged window (all agents summed) once the whole farm has
    reported it. ``stop()`` (thread-safe, e.g. from a signal handler) ends the run early: agents
    stop scheduling and the report still covers what ran.

    Resource handling: the socket (and the ZeroMQ context, unless one is given) belong to the
    coordinator and are closed when ``run`` returns or by ``close``.
    """

    def __init__(
        self,
        spec: RunSpec,
        *,
        bind: str = "tcp://127.0.0.1:5555",
        expect: int = 1,
        timing: Timing | None = None,
        listeners: Iterable[WindowListener] = (),
        context: zmq.Context[Any] | None = None,
        keys: CoordinatorKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.expect = expect
        self.timing = timing or Timing()
        self.clock = clock
        self._own_context = context is None
        self.context = context or zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        if keys is not None:
            # ZAP: the handshake of an agent whose public key is not in keys.authorized fails.
            self._auth = ThreadAuthenticator(self.context)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(keys.authorized))
        try:
            self.transport = RouterTransport(self.context, bind, None if keys is None else (keys.public, keys.secret))
        except BaseException:
            self._stop_auth()
            raise
        self.endpoint = self.transport.endpoint
        self.aggregator = Aggregator(spec.window, listeners)
        self.state = CoordinatorState(spec, expect, self.timing, now=clock())
        self._stop = threading.Event()
        self._abort = False
        self._stop_sent = False
        self._stopped_at: float | None = None
        self._closed = False
        self.cpu_seconds = 0.0

    def stop(self, *, abort: bool = False) -> None:
        self._abort = self._abort or abort
        self._stop.set()

    def run(self) -> Report:
        started_wall = time.monotonic()
        cpu0 = time.process_time()
        finish: Finish | None = None
        try:
            next_tick = self.clock()
            while finish is None:
                now = self.clock()
                timeout = max(0.0, min(_TICK, next_tick - now))
                if self.transport.poll(timeout):
                    for agent, msg in self.transport.recv_all():
                        finish = self._apply(self.state.on_message(agent, msg, self.clock())) or finish
                        if finish is not None:
                            break
                now = self.clock()
                if finish is None and now >= next_tick:
                    next_tick = now + _TICK
                    finish = self._apply(self.state.on_tick(now))
                    self.aggregator.release(self._running_ids())
                if finish is None and self._stop.is_set() and not self._stop_sent:
                    self._stop_sent = True
                    self._stopped_at = self.clock()
                    finish = self._apply(self.state.stop(self.clock(), abort=self._abort))
                if finish is None and self._abort:
                    # A second interrupt: report now with what has arrived.
                    finish = Finish(False, "aborted: windows not yet received are not in this report", 1)
            if not finish.ok and self.state.start_at is None:
                self._apply(self.state.stop(self.clock(), abort=True))
        finally:
            self.cpu_seconds = time.process_time() - cpu0
            self.aggregator.release([], final=True)
        return self._report(finish, time.monotonic() - started_wall)

    def _running_ids(self) -> list[str]:
        return [a.id for a in self.state.agents.values() if a.state is AgentState.RUNNING]

    def _apply(self, actions: list[Any]) -> Finish | None:
        finish = None
        for action in actions:
            if isinstance(action, Send):
                self.transport.send(action.agent, action.type, action.fields)
            elif isinstance(action, Accept):
                try:
                    window = Window.from_wire(action.window)
                except (KeyError, TypeError, ValueError) as exc:
                    self.transport.bad.drop(f"bad window from {action.agent!r}: {exc!r}")
                    continue
                self.aggregator.add(action.agent, window)
            elif isinstance(action, Log):
                log.log(logging.getLevelName(action.level.upper()), "%s", action.text)
            elif isinstance(action, Finish):
                finish = action
        return finish

    def _report(self, finish: Finish, elapsed: float) -> Report:
        state = self.state
        spec = self.spec
        start_at = state.start_at
        agents = []
        longest_sent = 0.0
        for a in state.agents.values():
            if a.state is AgentState.SPARE:
                continue
            hb = a.stats
            longest_sent = max(longest_sent, float(hb.get("sent_s", 0.0) or 0.0))
            agents.append(
                {
                    "id": a.id,
                    "name": a.name,
                    "host": a.host,
                    "pid": a.pid,
                    "capacity": a.capacity,
                    "share": round(a.share, 6),
                    "state": a.state.value,
                    "counts": self.aggregator.counts(a.id),
                    "clock_offset_ms": round(a.offset * 1000, 3),
                    "rtt_ms": None if math.isnan(a.rtt) else round(a.rtt * 1000, 3),
                    "lost": a.state is AgentState.LOST,
                    "lost_at_s": None if a.lost_at is None or start_at is None else round(a.lost_at - start_at, 3),
                    "error": a.error or None,
                    "missed_slots": a.missed_slots,
                    "cpu_percent": hb.get("cpu"),
                    "stopped_early": a.stopped_early,
                }
            )
        if spec.sharded:
            profile = spec.tasks[0].profile
            assert profile is not None
            length = profile.length(spec.until)
            requested = profile.average_rate(length)
            target = spec.tasks[0].target
            describe = profile.describe()
        else:
            lengths = []
            requested = 0.0
            for t in spec.tasks:
                assert t.profile is not None
                ln = t.profile.length(spec.until)
                lengths.append(ln)
                requested += t.profile.average_rate(ln)
            length = max(lengths)
            targets = sorted({t.target for t in spec.tasks})
            target = targets[0] if len(targets) == 1 else ", ".join(targets)
            describe = ", ".join(t.profile.describe() for t in spec.tasks if t.profile is not None)
        stopped = any(a["stopped_early"] for a in agents) or self._stop_sent
        if stopped or math.isinf(length):
            # What the agents said they sent; failing that (aborted before their done), the time
            # from the start to the stop.
            length = longest_sent
            if not length and start_at is not None and self._stopped_at is not None:
                length = max(0.0, self._stopped_at - start_at)
        notes = []
        if not finish.ok and finish.reason:
            notes.append(finish.reason)
        notes += [f"coordinator listener failed: {e}" for e in self.aggregator.listener_errors]
        if self.transport.bad.total:
            notes.append(f"{self.transport.bad.total} bad frames were dropped by the coordinator")
        task = spec.tasks[0]
        report = Report.from_tally(
            self.aggregator.tally,
            target=target,
            requested_rps=requested,
            duration_s=length,
            elapsed_s=elapsed,
            send_duration_s=longest_sent,
            profile=describe,
            overtime=task.overtime,
            timeout_s=task.timeout,
            stopped_early=stopped,
            agents=agents,
            epochs=list(state.epochs),
            notes=notes,
        )
        report.status = finish.status
        return report

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.transport.close()
        self._stop_auth()
        if self._own_context:
            self.context.term()

    def _stop_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
