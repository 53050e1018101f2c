"""The executor: runs one scenario's load on the event loop and counts every outcome once.

The load model's pacer (``core.load``: slots on a schedule, users, or drain lanes) decides when
to launch; the calls themselves and the one way their outcomes are counted are ``calls``; the
stamps fold into report windows in ``recorder``, and each closed window goes to ``on_window``
and into the executor's ``Tally``.

A farm agent's executor follows a ``Plan``: its shard of the farm's global slots (or members),
switched at each epoch (``epoch``; a slot already passed is never fired again, even when the
epoch arrives late), halted at one instant (``stop_at``), its load changed at runtime from one
instant (``change``). It holds a *lease*: past ``lease_until`` it stops scheduling on its own,
so a load never runs on unattended even if the agent's control thread cannot get the CPU. It
reports how far it got: ``reach`` (the first global slot it did not pass), ``started`` (calls
its members started) and ``stopped_s`` (seconds from the start at which it stopped early).

Resource handling: ``run`` owns the pacer task, the folding and timeout tasks, every call's
task and the thread pool; when it returns (or is cancelled) none of them is left running, except
threads of plain-function targets that ignored their timeout (they cannot be killed; their
slot is already counted as ``Timeout`` and their late result is dropped).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from pusher_farm.core.calls import Calls, Context
from pusher_farm.core.config import Config
from pusher_farm.core.epochs import HALT, Epoch, Plan
from pusher_farm.core.gossip import GossipHub
from pusher_farm.core.load import Load
from pusher_farm.core.recorder import Recorder
from pusher_farm.core.shard import Shard
from pusher_farm.core.tally import Tally
from pusher_farm.core.window import Window
from pusher_farm.items.desk import Desk

__all__ = ["Executor"]

#: outcomes are folded into their windows this often (seconds)
_FOLD_PERIOD = 0.025
#: ... or this seldom when few outcomes come in (each fold is a wake-up: a cost at low rates)
_FOLD_PERIOD_IDLE = 0.1
#: outcomes per fold below which folding slows down to _FOLD_PERIOD_IDLE
_FOLD_FEW = 1000
#: calls past their timeout are failed this often (seconds): timeouts fire up to this late
_SWEEP_PERIOD = 0.01
#: ... at most, and at least a fiftieth of the timeout (a 30 s timeout is checked every 0.1 s)
_SWEEP_PERIOD_MAX = 0.1


class Executor:
    """One run of one target on the running event loop (see the module docstring).

    ``config`` holds the run's load model; ``plan`` the epochs this executor follows (default:
    every slot or member, from the start); ``start_at`` is the start on ``clock`` (default: when
    ``run`` begins). The load model's pacer (``Load.run``) does the launching; the executor
    owns the calls, the recorder, the plan, the lease and the stop.
    """

    def __init__(
        self,
        target: Callable[[Context], Any],
        config: Config,
        *,
        ident: str = "",
        plan: Plan | None = None,
        start_at: float | None = None,
        hub: GossipHub | None = None,
        on_window: Callable[[Window], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        items: Desk | None = None,
    ) -> None:
        if config.load is None:
            raise ValueError("the executor needs a config with a load model")
        if config.load.needs_items and items is None:
            raise ValueError(f"{config.load.describe_kind()} needs a desk of work items")
        self.items = items
        self.target = target
        self.config = config
        #: the load model in force (a runtime change replaces it, the same up to the change)
        self.load: Load = config.load
        self.plan = plan if plan is not None else Plan()
        self.ident = ident
        self.start_at = start_at
        self.hub = hub if hub else None
        self.on_window = on_window
        self.clock = clock
        self.tally = Tally(config.window, config.max_names)
        self.recorder = Recorder(config.window, self._emit, name=config.name, max_names=config.max_names)
        self.calls: Calls | None = None
        self.t0 = math.nan
        self.scheduled_end = math.nan
        self.stopped_early = False
        self.aborted = False
        #: the run stops scheduling past this time on ``clock`` (renewed by a farm agent)
        self.lease_until = math.inf
        self.lease_expired = False
        #: how far this executor got in the farm's schedule (a model of slots): one past the
        #: last slot it launched, or the slot it was told to halt at (None: it launched nothing)
        self.reach: int | None = None
        #: calls its members started (a model of members: what it planned)
        self.started = 0
        #: seconds from the start at which scheduling stopped early (None: ran to the end)
        self.stopped_s: float | None = None
        self._pacer: asyncio.Task[None] | None = None
        self._changes = 0  # runtime changes of the load (the pacer notices one by ``version``)
        self._later: list[asyncio.TimerHandle] = []

    @property
    def in_flight(self) -> int:
        return 0 if self.calls is None else self.calls.in_flight

    @property
    def version(self) -> int:
        """Grows with every new epoch and every runtime change: a pacer takes them up from where it is."""
        return self.plan.version + self._changes

    def planned(self) -> int:
        """What this executor's plan asked of it (the load model counts it)."""
        return self.load.planned(self.plan, self.reach, self.started, self.stopped_early)

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> Tally:
        loop = asyncio.get_running_loop()
        cfg = self.config
        self.calls = calls = Calls(
            self.target,
            ident=self.ident,
            overtime=cfg.overtime,
            timeout=cfg.timeout,
            recorder=self.recorder,
            hub=self.hub,
            clock=self.clock,
            items=self.items,
        )
        warm = getattr(self.target, "__pusher_warm__", None)
        if warm is not None and not self.stopped_early:
            # The target gets ready (the http target opens its --warm connections) in the time
            # before the start; a run of its own starts when it is.
            await warm(self.start_at)
        counters = getattr(self.target, "__pusher_counters__", None)
        if callable(counters):
            self.recorder.counters = counters
        self.t0 = self.recorder.t0 = self.start_at if self.start_at is not None else self.clock()
        folder = loop.create_task(self._fold_every_window())
        sweeper = loop.create_task(self._sweep_timeouts()) if cfg.timeout is not None else None
        self._pacer = loop.create_task(self.load.run(self))
        if self.stopped_early:  # stopped before it started
            self._pacer.cancel()
        try:
            try:
                await self._pacer
            except asyncio.CancelledError:
                if not self.stopped_early:
                    raise
            self.scheduled_end = self.clock()
            await calls.drain(None if cfg.timeout is None else cfg.timeout + 1.0)
        except BaseException:
            self._pacer.cancel()
            calls.abort()
            raise
        finally:
            folder.cancel()
            if sweeper is not None:
                sweeper.cancel()
            for handle in self._later:
                handle.cancel()
            self.recorder.flush(self.clock(), final=True)
            calls.close()
        return self.tally

    def stop(self) -> None:
        """Schedule no further call; calls in flight finish (bounded by the timeout). Before
        ``run`` has started, the run will schedule nothing."""
        if self._pacer is None or not self._pacer.done():
            self.mark_stopped()
        if self._pacer is not None and not self._pacer.done():
            self._pacer.cancel()

    def abort(self) -> None:
        """Stop at once: schedule nothing more and cancel every call in flight (each counted
        as failed, ``Interrupted``)."""
        self.aborted = True
        self.stop()
        if self.calls is not None:
            self.calls.abort()

    def epoch(self, at_s: float, shard: Shard | None, first: int | None = None) -> None:
        """From ``at_s`` seconds after the start on (and global slot ``first``, for a model of
        slots: by default its first slot due then), fire the slots or run the members of
        ``shard`` (a farm's new plan epoch). Call on the loop's thread. Slots this executor has
        already passed are never fired twice, even if the epoch arrives late."""
        self.plan.add(Epoch(at_s, self.load.epoch_slot(at_s) if first is None else first, shard))

    def stop_at(self, at_s: float, first: int | None = None) -> None:
        """Stop at ``at_s`` seconds from the start (a model of slots: at its slot due then, or
        ``first``): every agent of a farm told the same instant stops at the same point of the
        schedule. Call on the loop's thread."""
        self.plan.add(Epoch(at_s, self.load.epoch_slot(at_s) if first is None else first, HALT))

    def change(self, at_s: float, load: Load | None = None, overtime: int | None = None) -> None:
        """A runtime change from ``at_s`` seconds after the start: ``load`` is the same as the
        one in force up to then (``Load.changed``), so it is taken at once; the cap on calls in
        flight changes at that instant. Call on the loop's thread."""
        if load is not None:
            self.load = load
            self._changes += 1
        if overtime is not None:
            self.config = self.config.replace(overtime=overtime)
            delay = 0.0 if math.isnan(self.t0) else max(0.0, self.t0 + at_s - self.clock())
            if self.calls is None or delay <= 0:
                self._set_overtime(overtime)
            else:
                handle = asyncio.get_running_loop().call_later(delay, self._set_overtime, overtime)
                self._later.append(handle)

    def _set_overtime(self, overtime: int) -> None:
        if self.calls is not None:
            self.calls.set_overtime(overtime)

    def mark_stopped(self) -> None:
        """Scheduling stopped before the load's end (a stop, a halt, a cut)."""
        if not self.stopped_early:
            self.stopped_early = True
            self.stopped_s = max(0.0, self.clock() - self.t0) if not math.isnan(self.t0) else 0.0

    def expire_lease(self) -> None:
        """Nobody renewed the lease: scheduling stops on its own."""
        self.lease_expired = True
        self.mark_stopped()

    # -- background ---------------------------------------------------------------------------

    async def _sweep_timeouts(self) -> None:
        """Fail every call past its deadline (checked every 10-100 ms, a fiftieth of the timeout)."""
        timeout = self.config.timeout
        assert timeout is not None and self.calls is not None
        period = min(max(timeout / 50, _SWEEP_PERIOD), _SWEEP_PERIOD_MAX)
        while True:
            await asyncio.sleep(period)
            self.calls.sweep()

    async def _fold_every_window(self) -> None:
        # Fold often when busy (small batches keep each pause short), seldom when not; emit at
        # window boundaries.
        window = self.config.window
        busy = min(window, _FOLD_PERIOD)
        idle = min(window, _FOLD_PERIOD_IDLE)
        period = busy
        while True:
            await asyncio.sleep(period)
            folded = self.recorder.flush(self.clock(), final=False)
            period = busy if folded >= _FOLD_FEW * period / _FOLD_PERIOD_IDLE else idle

    def _emit(self, window: Window) -> None:
        self.tally.add(window)
        self.tally.close_before(window.index)
        if self.on_window is not None:
            self.on_window(window)
