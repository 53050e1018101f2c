"""The Worker: a target, an identity and settings; ``work`` runs it at a rate and reports."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from pusher_farm.core import loop as _loop
from pusher_farm.core.calls import Context, target_kind
from pusher_farm.core.config import Config
from pusher_farm.core.describe import describe_run
from pusher_farm.core.executor import HALT, Executor, add_epoch
from pusher_farm.core.gossip import GossipHub
from pusher_farm.core.limits import verdict
from pusher_farm.core.offers import Offer
from pusher_farm.core.report import Report, WorkerSummary, manifest, scenario_rows
from pusher_farm.core.schedule import Constant, Profile, Shard
from pusher_farm.core.thresholds import judge
from pusher_farm.core.window import Window
from pusher_farm.errors import InvalidOption, InvalidRPS, MissingTarget, PusherError, WorkerBusy
from pusher_farm.items.desk import Desk
from pusher_farm.items.local import LocalItems

__all__ = ["Worker", "describe_run", "hire", "planned_slots", "resolve_profile", "target_name"]


def target_name(target: Callable[..., Any]) -> str:
    name = getattr(target, "__pusher_name__", None)
    if name:
        return str(name)
    module = getattr(target, "__module__", None) or ""
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{qual}" if module else qual


def resolve_profile(rps: float | None, duration: float | None, profile: Profile | None) -> Profile:
    """The rate profile a run follows: ``with_profile``'s, or a constant ``rps``."""
    if profile is not None:
        if rps is not None:
            raise InvalidOption("give either rps or a profile (with_profile), not both")
        return profile
    if rps is None:
        raise InvalidRPS("not provided: give rps, or a profile with with_profile(...)")
    if duration is not None:
        _check_duration(duration)
    return Constant(rps, duration)


def _check_duration(duration: float | None) -> None:
    if duration is None:
        return
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise InvalidOption(f"duration must be a number of seconds, got {duration!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise InvalidOption(f"duration must be positive, got {duration!r}")


def planned_slots(executor: Executor) -> int:
    """The slots ``executor``'s plan asked of it: those of its epochs' shards from its first
    slot up to where its schedule ended (its length, or where it stopped: a run stopped early
    planned what it passed). In drain mode: the calls it started."""
    if executor.config.parallel or executor.config.users is not None:
        return (executor.reach or executor.first_slot) - executor.first_slot
    length = executor.config.length()
    end = executor.first_slot if executor.reach is None else executor.reach
    if not executor.stopped_early and math.isfinite(length):
        end = max(end, executor.profile.slot_count(length))
    epochs = executor.epochs
    total = 0
    for i, (first, shard) in enumerate(epochs):
        lo = max(first, executor.first_slot)
        hi = min(end, epochs[i + 1][0]) if i + 1 < len(epochs) else end
        if hi > lo and shard is not HALT:
            total += hi - lo if shard is None else shard.count(lo, hi)  # type: ignore[union-attr]
    return total


class Worker:
    """Calls one target on an exact open-loop schedule. Create it with ``hire``.

    ``await worker.work(rps, duration)`` (or ``worker.work_sync``) runs it and returns the
    ``Report``; a worker runs one ``work`` at a time (``WorkerBusy`` otherwise) and can be
    reused afterwards. ``stop()`` ends the current run early and still reports it; ``abort()``
    also cancels the calls in flight.
    """

    def __init__(self, ident: str, target: Callable[[Context], Any], config: Config) -> None:
        self._ident = ident
        self._target = target
        self._config = config
        self._busy = False
        self._executor: Executor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self._abort_requested = False
        self._lease = math.inf
        self._epochs: list[tuple[int, Shard | str | None]] = []
        self._user_epochs: list[tuple[float, Shard | None]] = []
        #: a stop at a time announced before the executor existed
        self._stop_at_s: float | None = None
        #: rate or cap changes announced before the executor existed (applied as it starts)
        self._changes: list[tuple[Profile | None, int | None]] = []
        #: held while plans pass from other threads to the run (see ``_on_executor``)
        self._handover = threading.Lock()

    def __str__(self) -> str:
        return self._ident

    def __repr__(self) -> str:
        return f"Worker({self._ident!r}, target={target_name(self._target)!r})"

    @property
    def ident(self) -> str:
        return self._ident

    @property
    def target(self) -> Callable[[Context], Any]:
        return self._target

    @property
    def busy(self) -> bool:
        """Whether the worker is working now."""
        return self._busy

    def config(self) -> Config:
        """This worker's settings (a read-only record)."""
        return self._config

    async def work(
        self,
        rps: float | None = None,
        duration: float | None = None,
        *,
        on_window: Callable[[Window], None] | None = None,
        close_target: bool = True,
        shard: Shard | None = None,
        first_slot: int = 0,
        start_at: float | None = None,
        desk: Desk | None = None,
        users_from_s: float = 0.0,
    ) -> Report:
        """Call the target ``rps`` times a second for ``duration`` seconds (``None``: until
        ``stop()``), then wait for the calls in flight (bounded by the timeout) and report.

        With ``with_profile(...)`` give no ``rps``: the profile sets the rate and, unless
        ``duration`` is shorter, the length. ``on_window`` receives each closed report window.
        A target with an ``aclose()`` coroutine (the http target's pool) is closed at the end
        unless ``close_target`` is false (several workers sharing one target).

        A farm agent also gives its ``shard`` of the farm's global slots, the ``first_slot`` it
        covers and ``start_at``, the farm's start on ``time.monotonic``'s clock, and the
        ``desk`` its work items come from (its coordinator hands them over).

        With a feed (``with_items``) each call works on the next item; a rate-mode run ends
        early when the feed runs dry (unless it cycles). In drain mode (``parallel``) ``rps`` is
        an optional cap and ``duration`` an optional bound: the run ends when every item is done.
        """
        if (self._config.parallel or self._config.users is not None) and rps is None and self._config.profile is None:
            profile = None  # drain mode without a rate cap, or the closed model
        else:
            profile = resolve_profile(rps, duration, self._config.profile)
        _check_duration(duration)
        if self._busy:
            raise WorkerBusy(f"{self._ident!r} is already working: try again when it is done")
        cfg = self._config.replace(profile=profile, until=self._config.until if duration is None else duration)
        if cfg.parallel and desk is None and cfg.feed is None:
            raise InvalidOption("drain mode (parallel) needs a feed of work items")
        if profile is None and cfg.until is None and cfg.feed_cycle:
            raise InvalidOption("a cycling feed never runs dry: give a duration")
        local = LocalItems(cfg, self._ident) if desk is None and cfg.feed is not None else None
        if local is not None:
            desk = local.desk
        self._busy = True
        hub = GossipHub(self, cfg.listeners, cfg.gossip_capacity)
        executor = Executor(
            self._target,
            cfg,
            ident=self._ident,
            shard=shard,
            first_slot=first_slot,
            start_at=start_at,
            hub=hub,
            on_window=on_window,
            items=desk,
            users_from_s=users_from_s,
        )
        dry_at: list[float] = []
        if desk is not None and desk.on_dry is None:

            def dry() -> None:  # the feed ran dry: a rate-mode run ends (drain mode ends itself)
                dry_at.append(time.monotonic() - executor.t0)
                if not cfg.parallel:
                    executor.stop()

            desk.on_dry = dry
        with self._handover:  # plans announced before the executor existed, none lost
            for profile_, overtime_ in self._changes:  # a farm's changes, in the order they came
                executor.reprofile(profile_, overtime_)
            self._changes.clear()
            for epoch in self._epochs:
                executor.replan(*epoch)
            self._epochs.clear()
            for at_s, shard_ in self._user_epochs:
                executor.replan_users(at_s, shard_)
            self._user_epochs.clear()
            if self._stop_at_s is not None:
                executor.stop_at_s(self._stop_at_s)
                self._stop_at_s = None
            executor.lease_until = self._lease
            self._executor = executor
            self._loop = asyncio.get_running_loop()
        started = time.monotonic()
        hub.start()
        try:
            if self._abort_requested:
                executor.aborted = True
            if self._stop_requested or self._abort_requested:
                executor.stop()
            await executor.run()
        finally:
            with self._handover:
                self._executor = None
                self._loop = None
                self._epochs.clear()
                self._user_epochs.clear()
                self._stop_at_s = None
                self._changes.clear()
            self._stop_requested = self._abort_requested = False
            self._lease = math.inf
            aclose = getattr(self._target, "aclose", None)
            if close_target and aclose is not None:
                await aclose()  # e.g. the http target's connection pool
            await asyncio.to_thread(hub.close, 10.0)
            if local is not None:
                await asyncio.to_thread(local.close)
            self._busy = False
        report = self._report(executor, hub, time.monotonic() - started)
        report.manifest = manifest([cfg])
        report.generator_verdict = verdict(report)
        if cfg.thresholds:
            judge(report, cfg.thresholds)
        if local is not None:
            report.items = local.summary()
            report.notes.extend(local.closed_notes)
            if dry_at and not cfg.parallel:
                report.notes.append(f"the feed ran dry at {dry_at[0]:.2f} s: the run ended there")
        return report

    def _report(self, executor: Executor, hub: GossipHub, elapsed: float) -> Report:
        cfg = executor.config
        profile = executor.profile
        end = executor.scheduled_end if not math.isnan(executor.scheduled_end) else time.monotonic()
        length = cfg.length() if profile is not None or cfg.users is not None else math.inf
        sent_s = max(end - executor.t0, 0.0)
        schedule_s = sent_s if (executor.stopped_early or math.isinf(length)) else length
        report = Report.from_tally(
            executor.tally,
            target=target_name(self._target),
            requested_rps=profile.average_rate(schedule_s) if profile is not None else 0.0,
            duration_s=max(schedule_s, 0.0),
            send_duration_s=sent_s,
            ran_s=max(time.monotonic() - executor.t0, 0.0),
            elapsed_s=elapsed,
            planned=planned_slots(executor),
            profile=describe_run(cfg),
            overtime=cfg.overtime,
            timeout_s=cfg.timeout,
            stopped_early=executor.stopped_early,
            gossip_dropped=hub.dropped,
            notes=list(hub.errors),
        )
        report.scenarios = scenario_rows(executor.tally, [cfg], {cfg.name: report.counts.planned}, report.duration_s)
        report.workers = [
            WorkerSummary(
                self._ident,
                target_kind(self._target),
                cfg.overtime,
                report.counts,
                report.achieved_rps,
                reach=executor.reach,
                stopped_s=executor.stopped_s,
            )
        ]
        return report

    def work_sync(self, rps: float | None = None, duration: float | None = None) -> Report:
        """The blocking twin of ``work`` (runs its own event loop, uvloop when installed)."""
        return _loop.run(self.work(rps, duration))

    def stop(self) -> None:
        """End the current run early: no further slot is scheduled, calls in flight finish.
        Safe to call from any thread."""
        self._stop_requested = True
        self._on_executor(lambda executor: executor.stop())

    def abort(self) -> None:
        """End the current run at once: no further slot, and every call in flight is
        canceled (counted as failed, ``Interrupted``). Safe to call from any thread."""
        self._abort_requested = True
        self._on_executor(lambda executor: executor.abort())

    def lease(self, until: float) -> None:
        """Let the current (or next) run schedule slots until ``until`` on ``time.monotonic``'s
        clock and no longer (a farm agent renews it while it hears its coordinator). Safe to
        call from any thread: it only sets a number the pacer reads."""
        self._lease = until
        executor = self._executor
        if executor is not None:
            executor.lease_until = until

    def replan(
        self, from_slot: int, shard: Shard | None, profile: Profile | None = None, overtime: int | None = None
    ) -> None:
        """From global slot ``from_slot`` on, fire the slots of ``shard`` (a farm's new plan
        epoch), with a new ``profile`` and ``overtime`` when the farm changed them. Safe to call
        from any thread, also just before the run starts."""

        def apply(executor: Executor) -> None:
            if profile is not None or overtime is not None:
                executor.reprofile(profile, overtime)
            executor.replan(from_slot, shard)

        change = (profile, overtime) if profile is not None or overtime is not None else None
        self._on_executor(apply, pending=(from_slot, shard), change=change)

    def replan_users(self, at_s: float, shard: Shard | None) -> None:
        """A closed model's new epoch: from ``at_s`` seconds after the start, this worker runs
        the users ``shard`` owns. Safe to call from any thread, also just before the run."""
        self._on_executor(
            lambda executor: executor.replan_users(at_s, shard), later=lambda: self._user_epochs.append((at_s, shard))
        )

    def stop_at_s(self, at_s: float) -> None:
        """Stop scheduling at the slot due ``at_s`` seconds from the start (a closed model: at
        that time); every agent of a farm told the same time stops at the same point."""

        def keep() -> None:  # before the run began: it stops there once it runs
            self._stop_at_s = at_s if self._stop_at_s is None else min(self._stop_at_s, at_s)

        self._on_executor(lambda executor: executor.stop_at_s(at_s), later=keep)

    def stop_at(self, slot: int) -> None:
        """Stop scheduling at global slot ``slot`` (a farm stops every agent at the same
        slot). Safe to call from any thread, also just before the run starts."""
        self._on_executor(lambda executor: executor.stop_at(slot), pending=(slot, HALT))

    def _on_executor(
        self,
        action: Callable[[Executor], None],
        pending: tuple[int, Shard | str | None] | None = None,
        change: tuple[Profile | None, int | None] | None = None,
        later: Callable[[], None] | None = None,
    ) -> bool:
        """Run ``action`` on the current executor, on its loop's thread; False if none (a
        ``pending`` plan then waits for the next run, and ``later`` is called under the
        hand-over lock to keep what the next run must apply)."""
        with self._handover:
            loop, executor = self._loop, self._executor
            if loop is None or executor is None:
                if pending is not None:
                    add_epoch(self._epochs, *pending)
                if change is not None:
                    self._changes.append(change)
                if later is not None:
                    later()
                return False
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action(executor)
            return True
        try:
            loop.call_soon_threadsafe(action, executor)
        except RuntimeError:
            return False  # the loop closed: the run is over
        return True


def hire(ident: str, target: Callable[[Context], Any] | None, *offers: Offer) -> Worker:
    """A new worker called ``ident`` that calls ``target`` with the settings ``offers`` make."""
    if target is None:
        raise MissingTarget("not provided")
    if not callable(target):
        raise MissingTarget(f"{target!r} is not callable")
    config = Config()
    for offer in offers:
        if not callable(offer):
            raise InvalidOption(f"{offer!r} is not an offer: use with_overtime(...), with_timeout(...), ...")
        config = offer(config)
        if not isinstance(config, Config):
            raise PusherError("an offer must return a Config")
    return Worker(str(ident), target, config)
