"""The executor: fires one worker's slots on the event loop and counts every outcome once.

Wake, launch every slot that is due (and those due within the batch: ``pacer``), sleep until
the next one. A slot that finds ``overtime`` calls in flight is canceled (counted, never
queued); the calls themselves and the one way their outcomes are counted are ``calls``; the
stamps fold into report windows in ``recorder``, and each closed window goes to ``on_window``
and into the executor's ``Tally``.

A farm agent's executor fires only its ``shard`` of the farm's global slots, switches shard at
each new plan epoch (``replan``; a slot already passed is never fired again, even when the
epoch arrives late), and holds a *lease*: past ``lease_until`` it stops scheduling on its own,
so a load never runs on unattended even if the agent's control thread cannot get the CPU.
It reports how far it got: ``reach`` (the first global slot it did not pass) and
``stopped_s`` (seconds from the start at which it stopped, when it stopped early).

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
from pusher_farm.core.closed import run_users
from pusher_farm.core.config import Config
from pusher_farm.core.drain import run_lanes
from pusher_farm.core.gossip import GossipHub
from pusher_farm.core.pacer import LAUNCHES_BEFORE_YIELD, LONGEST_SLEEP, Pacer
from pusher_farm.core.plans import HALT, add_epoch, plan_at
from pusher_farm.core.recorder import Recorder
from pusher_farm.core.schedule import Profile, Shard, slot_batches
from pusher_farm.core.tally import Tally
from pusher_farm.core.window import Window
from pusher_farm.items.desk import Desk

__all__ = ["HALT", "Executor", "add_epoch", "plan_at"]

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

    ``config`` must hold the run's profile; ``start_at`` is the start on ``clock`` (default:
    when ``run`` begins).
    """

    def __init__(
        self,
        target: Callable[[Context], Any],
        config: Config,
        *,
        ident: str = "",
        shard: Shard | None = None,
        first_slot: int = 0,
        start_at: float | None = None,
        hub: GossipHub | None = None,
        on_window: Callable[[Window], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        items: Desk | None = None,
        users_from_s: float = 0.0,
    ) -> None:
        if config.profile is None and not config.parallel and config.users is None:
            raise ValueError("the executor needs a config with a profile (or drain lanes, or users)")
        if config.parallel and items is None:
            raise ValueError("drain mode needs a desk of work items")
        self.items = items
        self.target = target
        self.config = config
        self.profile = config.profile
        self.ident = ident
        self.first_slot = first_slot
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
        #: a closed model makes no call past this many seconds from the start (``stop_at_s``)
        self.users_until = math.inf
        #: how far this executor got in the farm's schedule: one past the last slot it
        #: launched, or the slot it was told to halt at (None: it launched nothing)
        self.reach: int | None = None
        #: seconds from the start at which scheduling stopped early (None: ran to the end)
        self.stopped_s: float | None = None
        self._pacer: asyncio.Task[None] | None = None
        self._epochs: list[tuple[int, Shard | str | None]] = [(first_slot, shard)]
        #: the closed model's epochs: from each instant (seconds from the start) on, the users
        #: of its shard are this executor's (None: every user); none before the first
        self.user_epochs: list[tuple[float, Shard | None]] = [(users_from_s, shard)]
        self._replans = 0  # how many plans arrived (the pacer notices a change by it)

    @property
    def in_flight(self) -> int:
        return 0 if self.calls is None else self.calls.in_flight

    @property
    def epochs(self) -> list[tuple[int, Shard | str | None]]:
        """(first global slot, shard) of each plan epoch in slot order; a ``HALT`` shard
        ends the run there."""
        return list(self._epochs)

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
        if cfg.users is not None:
            self._pacer = loop.create_task(run_users(self))
        else:
            self._pacer = loop.create_task(run_lanes(self) if cfg.parallel else self._pace())
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
            self.recorder.flush(self.clock(), final=True)
            calls.close()
        return self.tally

    def stop(self) -> None:
        """Schedule no further slot; calls in flight finish (bounded by the timeout). Before
        ``run`` has started, the run will schedule nothing."""
        if self._pacer is None or not self._pacer.done():
            self._stopped()
        if self._pacer is not None and not self._pacer.done():
            self._pacer.cancel()

    def abort(self) -> None:
        """Stop at once: schedule nothing more and cancel every call in flight (each counted
        as failed, ``Interrupted``)."""
        self.aborted = True
        self.stop()
        if self.calls is not None:
            self.calls.abort()

    def replan(self, from_slot: int, shard: Shard | str | None) -> None:
        """From global slot ``from_slot`` on, fire the slots of ``shard`` (a new plan epoch,
        e.g. after the farm lost an agent; ``HALT``: none, the run stops there). Call on the
        loop's thread. Slots this executor has already passed are never fired twice, even if
        the new epoch arrives late."""
        add_epoch(self._epochs, from_slot, shard)
        self._replans += 1

    def reprofile(self, profile: Profile | None = None, overtime: int | None = None) -> None:
        """A farm changed its rate or its cap mid-run: ``profile`` is the new one, with the
        same slots at the same times as the old up to the change (``Profile.then``), so
        switching to it at once moves only the slots after it. Call on the loop's thread."""
        if profile is not None:
            self.profile = profile
            self._replans += 1  # the pacer takes up the new slot times from where it is
        if overtime is not None:
            self.config = self.config.replace(overtime=overtime)
            if self.calls is not None:
                self.calls.set_overtime(overtime)

    def stop_at(self, slot: int) -> None:
        """Stop scheduling at global slot ``slot``: every agent of a farm told the same slot
        stops at exactly the same point of the schedule. Call on the loop's thread."""
        self.replan(slot, HALT)

    def replan_users(self, at_s: float, shard: Shard | None) -> None:
        """From ``at_s`` seconds after the start, run the users ``shard`` owns (a farm's new
        epoch for a closed model). Call on the loop's thread."""
        self.user_epochs = sorted([*(e for e in self.user_epochs if e[0] < at_s), (at_s, shard)], key=lambda e: e[0])

    def stop_at_s(self, at_s: float) -> None:
        """Stop at the slot due ``at_s`` seconds from the start; a closed model's users make no
        call after that time. Call on the loop's thread."""
        if self.config.users is not None:
            self.users_until = min(self.users_until, at_s)
        elif self.profile is not None:
            self.stop_at(self.profile.first_slot_at(at_s))
        else:
            self.stop()

    def _stopped(self) -> None:
        if not self.stopped_early:
            self.stopped_early = True
            if not math.isnan(self.t0):
                self.stopped_s = max(0.0, self.clock() - self.t0)
            else:
                self.stopped_s = 0.0

    async def _pace(self) -> None:
        clock = self.clock
        t0 = self.t0
        assert self.calls is not None
        launch = self.calls.launch
        sleep = asyncio.sleep
        pacer = Pacer(batch=self.config.batch, spin=self.config.spin)
        until = self.config.until
        burst = 0
        next_k = self.first_slot  # no slot below this is ever fired (again)
        reached: int | None = None
        try:
            while True:
                shard, boundary = plan_at(self._epochs, next_k)
                if shard is HALT:
                    halt = self._halt_slot(next_k)
                    reached = halt if reached is None else max(reached, halt)
                    return self._stopped()
                assert not isinstance(shard, str)
                plans = self._replans
                replanned = False
                for ks, ts in slot_batches(self.profile, until=until, shard=shard, first=next_k):
                    for k, t in zip(ks, ts, strict=True):
                        if k >= boundary:
                            next_k = max(next_k, int(boundary))
                            replanned = True
                            break
                        due = t0 + t
                        now = clock()
                        wait = pacer.wait(due, now)
                        if wait is not None:
                            burst = 0
                            while wait is not None and self._replans == plans:
                                await sleep(min(wait, LONGEST_SLEEP))
                                now = clock()
                                if now > self.lease_until:
                                    return self._lease_over()
                                wait = pacer.wait(due, now)
                        if self._replans != plans:
                            replanned = True  # a new plan arrived while we waited for this slot
                            break
                        launch(k, due, now)
                        next_k = reached = k + 1
                        burst += 1
                        if burst >= LAUNCHES_BEFORE_YIELD:
                            # Far behind schedule: let calls, I/O and folding run now and then.
                            burst = 0
                            await sleep(0)
                            if clock() > self.lease_until:
                                return self._lease_over()
                    if replanned:
                        break
                if replanned:
                    continue
                if not math.isinf(boundary):
                    # No slot of this shard is left before the end, but a later epoch may own
                    # some of the slots between its start and the end.
                    next_k = max(next_k, int(boundary))
                    continue
                # This plan has no slot left. Until the schedule's end a newer plan may still
                # come and give this executor some: wait for it (or for the end).
                end = t0 + self.profile.length(until)
                while self._replans == plans and clock() < end:
                    await sleep(max(0.0, min(end - clock(), LONGEST_SLEEP)))
                if self._replans == plans:
                    return  # the schedule is exhausted and no newer plan came
        finally:
            self.reach = reached

    def _halt_slot(self, k: int) -> int:
        """The slot of the halt in force at ``k`` (the first: a halt is final)."""
        return min(first for first, shard in self._epochs if first <= k and shard is HALT)

    def _lease_over(self) -> None:
        self.lease_expired = True
        self._stopped()

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
