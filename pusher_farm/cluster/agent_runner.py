"""The agent's runner: runs each launched plan with the core executor, on the thread that
calls ``serve`` (the agent's main thread), one worker per scenario of the plan side by side on
one event loop, owned by one task group. Epochs, halts and leases come from the agent's
control thread and reach the workers through their thread-safe hand-over."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pusher_farm.cluster.agent_items import ItemPort
from pusher_farm.cluster.control import AgentMetrics
from pusher_farm.cluster.plan import AgentPlan
from pusher_farm.core import loop as _loop
from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.schedule import Profile, Shard
from pusher_farm.core.window import Window
from pusher_farm.core.worker import Worker
from pusher_farm.errors import PusherError

__all__ = ["ExecutorRunner"]

log = logging.getLogger("pusher_farm.cluster")

#: how the runner reports to the coordinator: (message type, run, fields)
Report = Callable[[str, str, dict[str, Any]], None]


class ExecutorRunner:
    """Runs each launched plan with the core executor on the thread that calls ``serve``: one
    worker per scenario of the plan, side by side on one event loop."""

    def __init__(self, name: str, gossips: Sequence[Gossiper] = (), metrics: AgentMetrics | None = None) -> None:
        self.name = name
        self.gossips = tuple(gossips)
        #: this agent's own /metrics (``--metrics``), fed every window its runs close
        self.metrics = metrics
        self._runs: queue.SimpleQueue[tuple[list[Worker], AgentPlan, Report, ItemPort | None] | None] = (
            queue.SimpleQueue()
        )
        self._workers: list[Worker] = []
        #: the current run's work items (a run with a feed), read by the control thread
        self.port: ItemPort | None = None

    def launch(self, plan: AgentPlan, target: Callable[..., Any] | tuple[Any, ...], report: Report) -> None:
        # The workers exist from now on, so epochs, halts and leases that arrive before their
        # run begins wait in them; so does the item port, which asks for items at once.
        targets = target if isinstance(target, tuple) else (target,)
        workers = [
            Worker(self.name if len(targets) == 1 else f"{self.name}/{c.name}", t, c.replace(listeners=self.gossips))
            for t, c in zip(targets, plan.configs, strict=True)
        ]
        self.port = ItemPort(plan.run, plan.credit, plan.config) if plan.credit else None
        self._workers = workers
        self._runs.put((workers, plan, report, self.port))

    def replan(self, from_slot: int, shard: Shard, profile: Profile | None = None, overtime: int | None = None) -> None:
        for worker in self._workers:
            worker.replan(from_slot, shard, profile, overtime)

    def replan_scenarios(self, at_s: float, from_slots: tuple[int | None, ...], shard: Shard) -> None:
        """A new epoch of a run of scenarios: each open one from its first slot due at
        ``at_s``, the closed model's users from that instant."""
        if len(from_slots) != len(self._workers):
            log.error("an epoch for %d scenarios, this run has %d: ignored", len(from_slots), len(self._workers))
            return
        for worker, first in zip(self._workers, from_slots, strict=True):
            if worker.config().users is not None:
                worker.replan_users(at_s, shard)
            elif first is not None:
                worker.replan(first, shard)

    def halt(self, *, abort: bool, at_slot: int | None, at_s: float | None = None) -> None:
        for worker in self._workers:
            if abort:
                worker.abort()
            elif at_slot is not None:
                worker.stop_at(at_slot)
            elif at_s is not None:
                worker.stop_at_s(at_s)
            else:
                worker.stop()

    def lease(self, until: float) -> None:
        for worker in self._workers:
            worker.lease(until)

    def serve(self, stopping: threading.Event) -> None:
        """Run what is launched until ``close``; call from the main thread."""
        while not stopping.is_set():
            try:
                item = self._runs.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                return
            self._execute(*item)

    def close(self) -> None:
        self._runs.put(None)

    def _execute(self, workers: list[Worker], plan: AgentPlan, report: Report, port: ItemPort | None) -> None:
        windows = 0

        share = plan.shard.share if plan.shard is not None else 1.0

        def on_window(w: Window) -> None:
            nonlocal windows
            report("window", plan.run, {"seq": windows, "w": w.to_wire()})
            windows += 1
            if self.metrics is not None:
                profile = next((c.profile for c in plan.configs if c.name == w.scenario), plan.config.profile)
                rate = profile.rate_at(w.start + w.length / 2) * share if profile is not None else 0.0
                self.metrics.on_window(w, rate)

        async def work_all() -> list[Any]:
            # Every scenario's run is owned by one task group: one failing cancels the others.
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        worker.work(
                            None,
                            None,
                            on_window=on_window,
                            shard=plan.shard,
                            first_slot=plan.first_of(i),
                            start_at=plan.local_start,
                            desk=port.desk if port is not None else None,
                            users_from_s=plan.from_s,
                        )
                    )
                    for i, worker in enumerate(workers)
                ]
            return [task.result() for task in tasks]

        def run_all() -> list[Any]:
            try:
                return _loop.run(work_all())
            except BaseExceptionGroup as group:  # the first failure, as itself
                raise group.exceptions[0] from None

        done: dict[str, Any] = {"stopped_early": True, "sent_s": 0.0}
        cpu0, started = time.process_time(), time.monotonic()
        try:
            results = run_all()
            summaries = [result.workers[0] for result in results]
            done.update(
                stopped_early=any(r.stopped_early for r in results),
                sent_s=max(r.send_duration_s for r in results),
                ran_s=max(r.ran_s for r in results),
                gossip_dropped=sum(r.gossip_dropped for r in results),
            )
            if summaries[0].reach is not None:
                done["reach"] = summaries[0].reach
            if plan.scenarios:
                done["reaches"] = [s.reach or 0 for s in summaries]
            stops = [s.stopped_s for s in summaries if s.stopped_s is not None]
            if stops:
                done["stopped_s"] = max(stops)
            if port is not None:
                done["starved"] = port.desk.starved
        except PusherError as exc:  # a plan this agent cannot follow: say so
            log.error("run %s: %s", plan.run, exc)
            done["error"] = str(exc)
        except Exception as exc:  # a bug must not leave the coordinator waiting for this run
            log.exception("run %s failed", plan.run)
            done["error"] = f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        done.update(
            windows=windows,
            elapsed_s=elapsed,
            cpu=round(100 * (time.process_time() - cpu0) / max(elapsed, 1e-9), 1),
        )
        self._workers = []
        report("done", plan.run, done)
        log.info("run %s done: %d windows", plan.run, windows)
