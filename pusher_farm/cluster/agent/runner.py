"""The agent's runner: runs each launched plan with the core executor.

``AgentRun`` is one plan on an event loop: one ``ScenarioRun`` per scenario of the plan, side
by side, owned by one task group (``run_together``), each with its part of the farm (its shard,
from its first slot and instant) and, for a scenario with a feed, its item port. Epochs,
changes, halts and leases come from the agent's control thread and reach the executors through
their thread-safe hand-over. It reports each window as it closes and ends with a typed ``Done``.

``ExecutorRunner`` hosts the runs on the thread that calls ``serve`` (the agent's main thread),
one after another. The ``Runner`` protocol is what the agent's driver calls; a test may host
``AgentRun`` on a loop of its own (the simulator does, on a virtual clock).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pusher_farm.cluster.agent.agent_actions import Change
from pusher_farm.cluster.agent.item_port import ItemPort
from pusher_farm.cluster.protocol.plan import AgentPlan
from pusher_farm.cluster.protocol.records import Done, ScenarioDone
from pusher_farm.core import loop as _loop
from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.scenario_run import ProcessResult, ScenarioRun, run_together
from pusher_farm.core.shard import Shard
from pusher_farm.core.window import Window
from pusher_farm.core.worker import Worker
from pusher_farm.errors import PusherError

__all__ = ["AgentRun", "ExecutorRunner", "Report", "Runner"]

log = logging.getLogger("pusher_farm.cluster")

#: how a runner hands its results to the control side: ("window", run, (seq, wire form)) for each
#: window as it closes, ("done", run, Done) at the end (called from the executor's thread)
Report = Callable[[str, str, Any], None]


class Runner(Protocol):
    """Executes the runs an agent is given (one at a time) and reports their windows and end."""

    def launch(self, plan: AgentPlan, targets: Sequence[Callable[..., Any]], report: Report) -> None:
        """Run ``plan`` with one target per scenario; windows and the end go to ``report``."""

    def epoch(self, at_s: float, shard: Shard, firsts: Sequence[int], changes: Sequence[Change]) -> None:
        """A new plan epoch of the current run (any thread)."""

    def halt(self, *, abort: bool, at_s: float | None = None, scenario: int | None = None) -> None:
        """Stop the current run (or one scenario of it) at ``at_s``, at once, or abort it."""

    def lease(self, until: float) -> None:
        """The current run may schedule until ``until`` on this agent's clock."""

    @property
    def ports(self) -> Mapping[int, ItemPort]:
        """The current run's work items, by scenario (those with a feed)."""


class AgentRun:
    """One plan on the running event loop (see the module docstring). ``on_window`` feeds the
    agent's own metrics (each window with its scenario's requested rate at its middle)."""

    def __init__(
        self,
        name: str,
        plan: AgentPlan,
        targets: Sequence[Callable[..., Any]],
        report: Report,
        *,
        gossips: Sequence[Gossiper] = (),
        clock: Callable[[], float] = time.monotonic,
        on_window: Callable[[Window, float], None] | None = None,
    ) -> None:
        self.plan = plan
        self.report = report
        self.clock = clock
        self.on_window = on_window
        self.windows = 0
        #: the work items of each scenario with a feed, by its position in the plan
        self.ports = {i: ItemPort(plan.run, i, plan.credit(i), c) for i, c in enumerate(plan.scenarios)
                      if plan.credit(i)}  # fmt: skip
        self.runs = []
        for i, (target, config) in enumerate(zip(targets, plan.scenarios, strict=True)):
            ident = name if len(targets) == 1 else f"{name}/{config.name}"
            worker = Worker(ident, target, config.replace(listeners=tuple(gossips)))
            port = self.ports.get(i)
            desk = port.desk if port is not None else None
            run = ScenarioRun(
                worker, worker.config(), part=plan.part(i), desk=desk, on_window=self._window, clock=clock
            )
            self.runs.append(run)

    def _window(self, w: Window) -> None:
        self.report("window", self.plan.run, (self.windows, w.to_wire()))
        self.windows += 1
        if self.on_window is not None:
            run = next((r for r in self.runs if r.config.name == w.scenario), None)
            if run is not None and run.executor is not None:  # its rate and share now (epochs change both)
                mid = w.start + w.length / 2
                shard = run.executor.plan.at_time(mid)
                share = shard.share if isinstance(shard, Shard) else 1.0 if shard is None else 0.0
                self.on_window(w, run.executor.load.rate_at(mid) * share)

    async def run(self) -> Done:
        """Run every scenario to its end; the done record (with the error that stopped it)."""
        cpu0, started = time.process_time(), self.clock()
        error: str | None = None
        done_all = ProcessResult.of([])
        try:
            done_all = await run_together(self.runs)
        except PusherError as exc:  # a plan this agent cannot follow: say so
            log.error("run %s: %s", self.plan.run, exc)
            error = str(exc)
        except Exception as exc:  # a bug must not leave the coordinator waiting for this run
            log.exception("run %s failed", self.plan.run)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            for target in {id(r.worker.target): r.worker.target for r in self.runs}.values():
                aclose = getattr(target, "aclose", None)
                if aclose is not None:
                    try:
                        await aclose()  # e.g. the http target's connection pool
                    except Exception:  # closing must not hide how the run went
                        log.exception("closing a target failed")
        elapsed = self.clock() - started  # the run's clock, as its executors keep time
        cpu = round(100 * (time.process_time() - cpu0) / max(elapsed, 1e-9), 1)
        results = done_all.results
        parts = tuple(ScenarioDone(r.planned, r.stopped_early, r.reach, r.stopped_s, r.starved) for r in results)
        done = Done(
            run=self.plan.run,
            windows=self.windows,
            stopped_early=done_all.stopped_early or error is not None,
            sent_s=done_all.sent_s,
            ran_s=done_all.ran_s,
            elapsed_s=elapsed,
            cpu=min(cpu, 1e5),
            gossip_dropped=done_all.gossip_dropped,
            error=error,
            scenarios=parts,
        )
        self.report("done", self.plan.run, done)
        log.info("run %s done: %d windows", self.plan.run, self.windows)
        return done

    # -- from the control thread -------------------------------------------------------------

    def epoch(self, at_s: float, shard: Shard, firsts: Sequence[int], changes: Sequence[Change]) -> None:
        changed = {c.index: c for c in changes}
        for i, run in enumerate(self.runs):
            change = changed.get(i)
            if change is not None:
                run.change(at_s, change.load, change.overtime)
            run.epoch(at_s, shard, firsts[i])

    def halt(self, *, abort: bool, at_s: float | None = None, scenario: int | None = None) -> None:
        for i, run in enumerate(self.runs):
            if scenario is not None and i != scenario:
                continue
            if abort:
                run.abort()
            elif at_s is not None:
                run.stop_at(at_s)
            else:
                run.stop()

    def lease(self, until: float) -> None:
        for run in self.runs:
            run.lease(until)


class ExecutorRunner:
    """Hosts each launched plan on the thread that calls ``serve`` (see the module docstring).
    ``metrics``: this agent's own /metrics, fed every window its runs close."""

    def __init__(self, name: str, gossips: Sequence[Gossiper] = (), metrics: Any = None) -> None:
        self.name = name
        self.gossips = tuple(gossips)
        self.metrics = metrics
        self._runs: queue.SimpleQueue[AgentRun | None] = queue.SimpleQueue()
        #: the run launched last (until the next launch, also after its end)
        self._current: AgentRun | None = None

    @property
    def ports(self) -> Mapping[int, ItemPort]:
        current = self._current
        return current.ports if current is not None else {}

    def launch(self, plan: AgentPlan, targets: Sequence[Callable[..., Any]], report: Report) -> None:
        # The run exists from now on, so epochs, halts and leases that arrive before it begins
        # wait in its hand-overs; so do its item ports, which ask for items at once.
        on_window = self.metrics.on_window if self.metrics is not None else None
        self._current = AgentRun(self.name, plan, targets, report, gossips=self.gossips, on_window=on_window)
        self._runs.put(self._current)

    def epoch(self, at_s: float, shard: Shard, firsts: Sequence[int], changes: Sequence[Change]) -> None:
        if self._current is not None:
            self._current.epoch(at_s, shard, firsts, changes)

    def halt(self, *, abort: bool, at_s: float | None = None, scenario: int | None = None) -> None:
        if self._current is not None:
            self._current.halt(abort=abort, at_s=at_s, scenario=scenario)

    def lease(self, until: float) -> None:
        if self._current is not None:
            self._current.lease(until)

    def serve(self, stopping: threading.Event) -> None:
        """Run what is launched until ``close``; call from the main thread."""
        while not stopping.is_set():
            try:
                run = self._runs.get(timeout=0.2)
            except queue.Empty:
                continue
            if run is None:
                return
            # It stays current after its end: its item ports hand in their last records with
            # its done, on the control thread; the next launch replaces it.
            _loop.run(run.run())

    def close(self) -> None:
        self._runs.put(None)
