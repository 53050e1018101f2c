"""One scenario run by one process: its executor, its gossip, and what it did.

A ``ScenarioRun`` is the executor of one scenario on this process's event loop (``run``), with
its part of the farm's plan (``Part``: the shard it fires, from which slot and instant, and the
farm's start on this clock) and its thread-safe hand-over (``epoch``, ``change``, ``stop_at``,
``lease``, ``stop``, ``abort`` from any thread, also before the run begins). It ends with a
typed ``ScenarioResult``. ``Worker.work`` runs one for its worker; a farm agent runs one per
scenario of its plan, and ``run_together`` owns several on one loop: the first failure cancels
the others and is raised as itself.

Resource handling: ``run`` owns the executor (and through it every call and thread) and the
gossip hub: both are closed when it returns. The target belongs to whoever made it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pusher_farm.core.config import Config
from pusher_farm.core.epochs import Plan
from pusher_farm.core.executor import Executor
from pusher_farm.core.gossip import GossipHub
from pusher_farm.core.handover import Handover
from pusher_farm.core.load import Load
from pusher_farm.core.shard import Shard
from pusher_farm.core.tally import Tally
from pusher_farm.core.window import Window
from pusher_farm.items.desk import Desk

if TYPE_CHECKING:
    from pusher_farm.core.worker import Worker

__all__ = ["Part", "ProcessResult", "ScenarioResult", "ScenarioRun", "run_together"]


@dataclass(frozen=True)
class Part:
    """One process's part of a scenario: the ``shard`` it fires (None: all of it), from global
    slot ``first`` and ``from_s`` seconds after the start (a process that joins mid-run starts
    later), and the start on this process's clock (None: when it runs)."""

    shard: Shard | None = None
    first: int = 0
    from_s: float = 0.0
    start_at: float | None = None


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario's executor did on one process."""

    name: str
    #: what its plan asked of it: slots (open model) or the calls its members started
    planned: int
    #: one past the last global slot it launched, or its halt slot (None: it launched none)
    reach: int | None
    stopped_early: bool
    #: seconds from the start at which it stopped early (None: it ran its load to the end)
    stopped_s: float | None
    #: seconds from the start to its last launch, and to the end of its last call
    sent_s: float
    ran_s: float
    gossip_dropped: int = 0
    #: slots that found no work item (counted canceled)
    starved: int = 0
    notes: tuple[str, ...] = ()
    tally: Tally | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ProcessResult:
    """What one process's scenarios did together (``of``): the longest sent and ran, whether any
    stopped early, the gossips dropped and the notes of all of them."""

    results: tuple[ScenarioResult, ...]
    sent_s: float
    ran_s: float
    stopped_early: bool
    gossip_dropped: int
    notes: tuple[str, ...]

    @classmethod
    def of(cls, results: Sequence[ScenarioResult]) -> ProcessResult:
        return cls(
            tuple(results),
            sent_s=max((r.sent_s for r in results), default=0.0),
            ran_s=max((r.ran_s for r in results), default=0.0),
            stopped_early=any(r.stopped_early for r in results),
            gossip_dropped=sum(r.gossip_dropped for r in results),
            notes=tuple(n for r in results for n in r.notes),
        )


class ScenarioRun:
    """See the module docstring. ``worker`` names the calls' worker in gossips and holds the
    target; ``config`` is the scenario's (with its load)."""

    def __init__(
        self,
        worker: Worker,
        config: Config,
        *,
        part: Part = Part(),
        desk: Desk | None = None,
        on_window: Callable[[Window], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker = worker
        self.config = config
        self.part = part
        self.desk = desk
        self.on_window = on_window
        self.clock = clock
        self.handover = Handover()
        self.executor: Executor | None = None

    async def run(self) -> ScenarioResult:
        """Run the scenario's part on the running loop, to its end (or its stop)."""
        cfg, part = self.config, self.part
        hub = GossipHub(self.worker, cfg.listeners, cfg.gossip_capacity)
        plan = Plan(part.shard, first=part.first, from_s=part.from_s)
        executor = self.executor = Executor(
            self.worker.target, cfg, ident=self.worker.ident, plan=plan, start_at=part.start_at, hub=hub,
            on_window=self.on_window, clock=self.clock, items=self.desk,
        )  # fmt: skip
        self.handover.attach(executor)
        hub.start()
        try:
            await executor.run()
        finally:
            self.handover.detach()
            if hub:  # listeners end on their threads: wait for them off the loop
                await asyncio.to_thread(hub.close, 10.0)
        end = executor.scheduled_end if not math.isnan(executor.scheduled_end) else self.clock()
        return ScenarioResult(
            name=cfg.name,
            planned=executor.planned(),
            reach=executor.reach,
            stopped_early=executor.stopped_early,
            stopped_s=executor.stopped_s,
            sent_s=max(end - executor.t0, 0.0),
            ran_s=max(self.clock() - executor.t0, 0.0),
            gossip_dropped=hub.dropped,
            starved=self.desk.starved if self.desk is not None else 0,
            notes=tuple(hub.errors),
            tally=executor.tally,
        )

    # -- from any thread ---------------------------------------------------------------------

    def epoch(self, at_s: float, shard: Shard | None, first: int | None = None) -> None:
        """A farm's new plan epoch: from ``at_s`` (slot ``first``) on, ``shard``'s part."""
        self.handover.do(lambda ex: ex.epoch(at_s, shard, first))

    def change(self, at_s: float, load: Load | None = None, overtime: int | None = None) -> None:
        """A runtime change from ``at_s`` seconds after the start (``Executor.change``)."""
        self.handover.do(lambda ex: ex.change(at_s, load, overtime))

    def stop_at(self, at_s: float) -> None:
        """Stop at ``at_s`` seconds from the start (every agent told the same instant stops at
        the same point of the schedule)."""
        self.handover.do(lambda ex: ex.stop_at(at_s))

    def stop(self) -> None:
        """Schedule nothing more; calls in flight finish."""
        self.handover.do(lambda ex: ex.stop())

    def abort(self) -> None:
        """Stop at once and cancel every call in flight (each counted ``Interrupted``)."""
        self.handover.do(lambda ex: ex.abort())

    def lease(self, until: float) -> None:
        self.handover.lease(until)


async def run_together(runs: Sequence[ScenarioRun]) -> ProcessResult:
    """Run every scenario side by side on this loop, owned by one task group: the first failure
    cancels the others and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(r.run()) for r in runs]
    except BaseExceptionGroup as failed:
        raise first_error(failed) from None
    return ProcessResult.of([t.result() for t in tasks])


def first_error(group: BaseException) -> BaseException:
    """The first error of a task group (the one that cancelled the others), itself."""
    error: Any = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
