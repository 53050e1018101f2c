"""The coordinator: one farm run, from the first hello to the merged report.

The decisions live in ``CoordinatorState``; this driver only moves frames between a hub (the
ZeroMQ socket, or the in-process network in tests), the state machine and the aggregator, and
turns the result into a ``Report`` (``summary``). ``step`` is one wake-up, so a test can drive a
whole farm with a fake clock; ``run`` loops it on the real one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from pusher_farm.cluster.actions import Accept, Action, Finish, Finished, Log, Send, SendFrame
from pusher_farm.cluster.aggregator import Aggregator
from pusher_farm.cluster.control import ControlServer, snapshot
from pusher_farm.cluster.members import AgentState
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.cluster.protocol import PROTOCOL_VERSION, encode
from pusher_farm.cluster.security import CoordinatorKeys
from pusher_farm.cluster.state import CoordinatorState, Timing
from pusher_farm.cluster.summary import build_report
from pusher_farm.cluster.transport import Hub
from pusher_farm.core.limits import LimitWatch, verdict
from pusher_farm.core.report import Report, manifest
from pusher_farm.core.thresholds import Verdict, Watch, judge
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
    """Binds ``bind``, waits for ``expect`` agents, runs ``spec`` on them and reports.

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
        spec: RunSpec,
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
        #: the run's work items (a feed): read here, handed to agents, finished here
        self.items = CentralItems(spec.policy) if spec.policy.feed is not None else None
        dealer = self.items.dealer if self.items is not None else None
        try:
            self.state = CoordinatorState(spec, expect, timing, now=clock(), dealer=dealer)
            self.timing = self.state.timing
            if hub is None:
                from pusher_farm.cluster.transport_zmq import ZmqHub

                hub = ZmqHub(bind, keys=keys, insecure=insecure)
        except BaseException:
            if self.items is not None:
                self.items.close()
            raise
        self.hub = hub
        self.endpoint = hub.endpoint
        listeners = list(listeners)
        #: the HTTP side (state, agents, metrics), published to every quarter second
        self.control = control
        self._published_at = -math.inf
        if control is not None:
            listeners.append(control.on_window)
            control.rate_at = lambda t: sum(c.profile.rate_at(t) for c in self.spec.configs if c.profile is not None)
        #: --abort-on-fail: the thresholds checked on the merged totals after every window
        self.watch: Watch | None = None
        if spec.policy.abort_on_fail and spec.policy.thresholds:
            requested = sum(c.profile.average_rate(spec.length()) for c in spec.configs if c.profile is not None)
            self.watch = Watch(spec.policy.thresholds, spec.policy.window, requested, self._threshold_failed)
            listeners.append(self.watch.add)
        #: --abort-when-generator-limited: why the run was stopped (empty: it was not)
        self.limited = ""
        if spec.policy.abort_when_generator_limited:
            listeners.append(LimitWatch(self._generator_limited).add)
        self.aggregator = Aggregator(spec.policy.window, listeners, max(c.max_names for c in spec.configs))
        self.finish: Finish | None = None
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._stopped = self._aborted = False
        self._next_tick = clock()
        self._closed = False

    @property
    def spec(self) -> RunSpec:
        """The run as it stands (a runtime change replaces its profile or cap)."""
        return self.state.spec

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
        if self.items is not None:
            self.items.pace()
        if self.control is not None:
            for changes, answer in self.control.take():
                try:
                    actions, info = self.state.change(now, **changes)
                except PusherError as exc:
                    answer(None, exc.reason)
                    continue
                self._apply(actions)
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

    def run(self) -> Report:
        """Run to the end on the real clock and return the merged report."""
        started = time.monotonic()
        cpu0 = time.process_time()
        try:
            while self.step(self.clock(), max(0.0, min(_TICK, self._next_tick - self.clock()))) is None:
                pass
        finally:
            self.cpu_seconds = time.process_time() - cpu0
            self.aggregator.release([], final=True)
            if self.control is not None:
                self.control.published = snapshot(self)  # the end: counters equal the report's
            if self.items is not None:
                self.items.close()
        assert self.finish is not None
        return self.report(time.monotonic() - started)

    def report(self, elapsed: float) -> Report:
        """The report of what has arrived (the run's end, once it has come)."""
        finish = self.finish or Finish(False, "the run did not finish", 1)
        report = build_report(self.state, self.aggregator, finish, elapsed=elapsed, dropped=self.hub.dropped)
        report.manifest = manifest(self.spec.configs, [a.host for a in report.agents])
        report.manifest["protocol"] = PROTOCOL_VERSION
        # the items first: the verdict does not count slots that found no item as the generator's
        if self.items is not None:
            report.items = self.items.summary()
            report.items["starved_slots"] = sum(int(a.stats.get("starved", 0)) for a in self.state.agents.values())
            report.notes += [*self.items.feed.notes(), *self.items.closed_notes]
            if getattr(self.items.feed, "error", None):
                report.status = max(report.status, 1)  # the feed failed: the run did not do all it was asked
            dry_s = self.state.dry_s
            if dry_s is not None and not self.spec.drain:
                report.notes.append(f"the feed ran dry at {dry_s:.2f} s: the run ended there")
        report.generator_verdict = verdict(report)
        if self.limited:
            report.notes.append(f"stopped early: the generator was the limit ({self.limited}; "
                                "--abort-when-generator-limited)")  # fmt: skip
            report.status = max(report.status, 1)
        self._judge(report)
        return report

    def _judge(self, report: Report) -> None:
        if not self.spec.policy.thresholds:
            return
        stopped_by = self.watch is not None and bool(self.watch.failed)
        judge(report, self.spec.policy.thresholds, failed_during=stopped_by)
        if self.watch is not None and self.watch.failed:
            failed = ", ".join(v.threshold.text for v in self.watch.failed)
            report.notes.append(f"stopped early: threshold {failed} failed (--abort-on-fail)")

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
                if self.items is not None:
                    self.items.finished(action.items)
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
