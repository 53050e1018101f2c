"""The coordinator: one farm run, from the first hello to the merged report.

The decisions live in ``CoordinatorState``; this driver only moves frames between a hub (the
ZeroMQ socket, or the in-process network in tests), the state machine and the aggregator, hands
finished work items to each scenario's handlers, and turns the result into a ``Report``
(``outcome``, then the one report builder). ``step`` is one wake-up, so a test can drive a
whole farm with a fake clock; ``run`` loops it on the real one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pusher_farm.cluster.control.server import ControlServer
from pusher_farm.cluster.control.snapshot import snapshot
from pusher_farm.cluster.coordinator.actions import Accept, Action, Finish, Finished, Log, Send, SendFrame
from pusher_farm.cluster.coordinator.aggregator import Aggregator
from pusher_farm.cluster.coordinator.membership import AgentState
from pusher_farm.cluster.coordinator.outcome import farm_outcome
from pusher_farm.cluster.coordinator.router import CoordinatorState
from pusher_farm.cluster.protocol.messages import PROTOCOL_VERSION, encode
from pusher_farm.cluster.timing import Timing
from pusher_farm.cluster.transport.seam import Hub
from pusher_farm.cluster.transport.security import CoordinatorKeys
from pusher_farm.core.limits import LimitWatch
from pusher_farm.core.reporting import build_report, finish_report
from pusher_farm.core.results import Report
from pusher_farm.core.run import Run
from pusher_farm.core.scenario import ScenarioError
from pusher_farm.core.thresholds import Verdict, Watch
from pusher_farm.core.window import Window
from pusher_farm.errors import PusherError
from pusher_farm.items.central import CentralItems

__all__ = ["Coordinator", "WindowListener"]

log = logging.getLogger("pusher_farm.cluster")

#: a coordinator-side listener: called with each merged window of the whole farm
WindowListener = Callable[[Window], None]

_TICK = 0.05
#: the HTTP side's snapshot is refreshed this often (seconds)
_PUBLISH = 0.25


class Coordinator:
    """Binds ``bind``, waits for ``expect`` agents, runs ``run`` on them and reports.

    Binding beyond loopback needs ``keys`` (or ``insecure=True``): the check is here, so a
    Python user gets the same safety as the command line. ``listeners`` receive every merged
    window (all agents summed) once the whole farm has reported it. ``stop()`` (thread-safe,
    e.g. from a signal handler) ends the run early: agents stop scheduling and the report still
    covers what ran; ``stop(abort=True)`` also cancels their calls in flight.

    Resource handling: the hub (socket, authenticator, context) belongs to the coordinator and
    is closed by ``close`` (or leaving its ``with`` block); a ``hub`` passed in is closed too.
    """

    def __init__(
        self,
        run: Run,
        *,
        bind: str = "tcp://127.0.0.1:5555",
        expect: int = 1,
        timing: Timing | None = None,
        listeners: Iterable[WindowListener] = (),
        keys: CoordinatorKeys | None = None,
        insecure: bool = False,
        hub: Hub | None = None,
        clock: Callable[[], float] = time.monotonic,
        control: ControlServer | None = None,
    ) -> None:
        self.clock = clock
        #: each scenario's work items (a feed): read here, handed to agents, finished here
        self.items: dict[int, CentralItems] = {}
        try:
            for i in run.with_feeds():
                try:
                    self.items[i] = CentralItems(run.scenarios[i])
                except PusherError as exc:  # a feed or a file that cannot be: named by its scenario
                    raise ScenarioError.of(run.scenarios[i].name, "feed", exc) from None
            dealers = {i: items.dealer for i, items in self.items.items()}
            self.state = CoordinatorState(run, expect, timing, now=clock(), dealers=dealers)
            self.timing = self.state.timing
            if hub is None:
                from pusher_farm.cluster.transport.zeromq import ZmqHub

                hub = ZmqHub(bind, keys=keys, insecure=insecure)
        except BaseException:
            for items in self.items.values():
                items.close()
            raise
        self.hub = hub
        self.endpoint = hub.endpoint
        listeners = list(listeners)
        #: the HTTP side (state, agents, metrics), published to every quarter second
        self.control = control
        self._published_at = -math.inf
        if control is not None:
            listeners.append(control.on_window)
            control.rate_at = lambda t: self.run.rate_at(t)
        settings = run.settings
        #: --abort-on-fail: the thresholds checked on the merged totals after every window
        self.watch: Watch | None = None
        if settings.abort_on_fail and settings.thresholds:
            requested = run.requested_rps(run.length())
            self.watch = Watch(settings.thresholds, settings.window, requested, self._threshold_failed)
            listeners.append(self.watch.add)
        #: --abort-when-generator-limited: why the run was stopped (empty: it was not)
        self.limited = ""
        if settings.abort_when_generator_limited:
            listeners.append(LimitWatch(self._generator_limited).add)
        self.aggregator = Aggregator(settings.window, listeners, max(c.max_names for c in run))
        self.finish: Finish | None = None
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._stopped = self._aborted = False
        self._next_tick = clock()
        self._closed = False

    @property
    def run(self) -> Run:
        """The run as it stands (a runtime change replaces a scenario's load or cap)."""
        return self.state.run

    def _threshold_failed(self, verdicts: list[Verdict]) -> None:
        names = ", ".join(v.threshold.text for v in verdicts)
        log.warning("threshold %s failed: stopping the run (--abort-on-fail)", names)
        self.stop()

    def _generator_limited(self, reason: str) -> None:
        self.limited = reason
        log.warning("the generator is the limit (%s): stopping the run (--abort-when-generator-limited)", reason)
        self.stop()

    def stop(self, *, abort: bool = False) -> None:
        """End the run early (any thread); ``abort``: cancel the calls in flight too."""
        if abort:
            self._abort.set()
        self._stop.set()

    def change(self, scenario: str | None = None, **changes: float) -> dict[str, Any]:
        """Change one scenario of the running farm (``scenario``: its name; None in a run of
        one): any of its load's knobs (``rps``, ``users``, ``parallel``) and ``overtime``, from
        a new epoch at one announced instant on every agent. Returns the epoch (its instant,
        its first slot and what changed); ``InvalidOption`` when the run cannot change so now.
        Call on the coordinator's thread (the HTTP side hands its changes over in ``step``)."""
        actions, info = self.state.change(self.clock(), scenario, **changes)
        self._apply(actions)
        return info

    def step(self, now: float, timeout: float = 0.0) -> Finish | None:
        """One wake-up: frames in (waiting up to ``timeout`` for the first), the stop the user
        asked for, and a tick when one is due. Returns the run's end once it has come."""
        if self.finish is not None:
            return self.finish
        for peer, frame in self.hub.recv(timeout):
            self._apply(self.state.on_frame(peer, frame, self.clock()))
            if self.finish is not None:
                return self.finish
        now = self.clock()
        if self._stop.is_set() and not self._stopped:
            self._stopped = True
            self._aborted = self._abort.is_set()
            self._apply(self.state.stop(now, abort=self._aborted))
        elif self._abort.is_set() and not self._aborted and self.finish is None:
            self._aborted = True  # a second Ctrl-C: cancel what is in flight
            self._apply(self.state.stop(now, abort=True))
        for items in self.items.values():
            items.pace()
        if self.control is not None:
            for changes, answer in self.control.take():
                try:
                    info = self.change(**changes)
                except PusherError as exc:
                    answer(None, exc.reason)
                    continue
                answer(info, None)
        if self.control is not None and now - self._published_at >= _PUBLISH:
            self._published_at = now
            self.control.published = snapshot(self)
        if self.finish is None and now >= self._next_tick:
            self._next_tick = now + _TICK
            self._apply(self.state.on_tick(now))
            running = [a.id for a in self.state.agents.values() if a.state is AgentState.RUNNING]
            self.aggregator.release(running)
        return self.finish

    def serve(self) -> Report:
        """Run to the end on the real clock and return the merged report."""
        started = time.monotonic()
        cpu0 = time.process_time()
        try:
            while self.step(self.clock(), max(0.0, min(_TICK, self._next_tick - self.clock()))) is None:
                pass
        finally:
            self.cpu_seconds = time.process_time() - cpu0
            self.settle()
            for items in self.items.values():
                items.close()
        assert self.finish is not None
        return self.report(time.monotonic() - started)

    def settle(self) -> None:
        """The run's end: every merged window goes to the listeners, and the last snapshot is
        published (its counters equal the report's)."""
        self.aggregator.release([], final=True)
        if self.control is not None:
            self.control.published = snapshot(self)

    def report(self, elapsed: float) -> Report:
        """The report of what has arrived (the run's end, once it has come)."""
        finish = self.finish or Finish(False, "the run did not finish", 1)
        run, state = self.run, self.state
        items = {run.scenarios[i].name: central.summary() for i, central in self.items.items()}
        outcome = farm_outcome(state, self.aggregator, finish, elapsed=elapsed, dropped=self.hub.dropped, items=items)
        report = build_report(outcome)
        for i, central in self.items.items():
            report.notes += [*central.feed.notes(), *central.closed_notes]
            if getattr(central.feed, "error", None):
                report.status = max(report.status, 1)  # the feed failed: the run did not do all it was asked
            c = run.scenarios[i]
            dry_s = state.dealing.dry_s.get(i)
            if dry_s is not None and c.load is not None and not c.load.needs_items:
                where = "the run" if len(run) == 1 else f"scenario {c.name!r}"
                report.notes.append(f"the feed ran dry at {dry_s:.2f} s: {where} ended there")
        if self.limited:
            report.notes.append(f"stopped early: the generator was the limit ({self.limited}; "
                                "--abort-when-generator-limited)")  # fmt: skip
            report.status = max(report.status, 1)
        stopped_by = self.watch is not None and bool(self.watch.failed)
        if self.watch is not None and self.watch.failed:
            failed = ", ".join(v.threshold.text for v in self.watch.failed)
            report.notes.append(f"stopped early: threshold {failed} failed (--abort-on-fail)")
        finish_report(report, run, hosts=[a.host for a in report.agents], failed_during=stopped_by)
        report.manifest["protocol"] = PROTOCOL_VERSION
        return report

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.hub.send(action.agent, encode(action.type, **action.fields))
            elif isinstance(action, Accept):
                self.aggregator.add(action.agent, action.window)
            elif isinstance(action, SendFrame):
                self.hub.send(action.peer, action.frame)
            elif isinstance(action, Log):
                log.log(logging.getLevelName(action.level.upper()), "%s", action.text)
            elif isinstance(action, Finished):
                items = self.items.get(action.scenario)
                if items is not None:
                    items.finished(action.items)
            elif isinstance(action, Finish):
                self.finish = action

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.hub.close()
            if self.control is not None:
                self.control.close()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
