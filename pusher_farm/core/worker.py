"""The Worker: a target, an identity and settings; ``work`` runs it at a rate and reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pusher_farm.core import loop as _loop
from pusher_farm.core.calls import Context, target_kind
from pusher_farm.core.config import Config
from pusher_farm.core.load import Load, Open
from pusher_farm.core.offers import Offer
from pusher_farm.core.reporting import Outcome, build_report, finish_report
from pusher_farm.core.results import Report, WorkerSummary
from pusher_farm.core.run import Run
from pusher_farm.core.scenario_run import ScenarioResult, ScenarioRun
from pusher_farm.core.window import Window
from pusher_farm.errors import InvalidOption, InvalidRPS, MissingTarget, PusherError, WorkerBusy
from pusher_farm.items.local import LocalItems

__all__ = ["Worker", "hire", "load_for_work", "target_name"]


def target_name(target: Callable[..., Any]) -> str:
    name = getattr(target, "__pusher_name__", None)
    if name:
        return str(name)
    module = getattr(target, "__module__", None) or ""
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{qual}" if module else qual


def load_for_work(load: Load | None, rps: float | None, duration: float | None) -> Load:
    """The load ``work(rps, duration)`` runs: a constant ``rps`` for ``duration`` seconds; or
    the worker's own model (``with_profile``, ``with_items(parallel=N)``: ``rps`` is then its
    rate cap), cut at ``duration``."""
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < float("inf")
    ):
        raise InvalidOption(f"duration must be a positive number of seconds, got {duration!r}")
    if load is None:
        if rps is None:
            raise InvalidRPS("not provided: give rps, or a profile with with_profile(...)")
        return Open.rate(rps, duration)
    return (load if rps is None else load.with_rate(rps)).cut(duration)


class Worker:
    """Calls one target on an exact open-loop schedule (or as its load model says). Create it
    with ``hire``.

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
        self._current: ScenarioRun | None = None
        #: a stop or abort asked while no run went: the next run begins stopped
        self._stop_next: str | None = None

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

    def scenario(self, rps: float | None, duration: float | None) -> Config:
        """The workload ``work(rps, duration)`` would run: this worker's settings with its load."""
        return self._config.replace(load=load_for_work(self._config.load, rps, duration))

    async def work(
        self,
        rps: float | None = None,
        duration: float | None = None,
        *,
        on_window: Callable[[Window], None] | None = None,
        close_target: bool = True,
    ) -> Report:
        """Call the target ``rps`` times a second for ``duration`` seconds (``None``: until
        ``stop()``), then wait for the calls in flight (bounded by the timeout) and report.

        With ``with_profile(...)`` give no ``rps``: the profile sets the rate and, unless
        ``duration`` is shorter, the length. ``on_window`` receives each closed report window.
        A target with an ``aclose()`` coroutine (the http target's pool) is closed at the end
        unless ``close_target`` is false (several workers sharing one target).

        With a feed (``with_items``) each call works on the next item; a rate-mode run ends
        early when the feed runs dry (unless it cycles). In drain mode (``parallel``) ``rps`` is
        an optional cap and ``duration`` an optional bound: the run ends when every item is done.
        """
        run = Run.of([self.scenario(rps, duration)])
        if self._busy:
            raise WorkerBusy(f"{self._ident!r} is already working: try again when it is done")
        self._busy = True
        started = time.monotonic()
        try:
            result, local, dry_s = await self._run(run.scenarios[0], on_window)
        finally:
            aclose = getattr(self._target, "aclose", None)
            if close_target and aclose is not None:
                await aclose()  # e.g. the http target's connection pool
            self._busy = False
        report = self._report(run, result, local, time.monotonic() - started)
        if dry_s is not None and not run.scenarios[0].load.needs_items:  # type: ignore[union-attr]
            report.notes.append(f"the feed ran dry at {dry_s:.2f} s: the run ended there")
        return report

    async def _run(
        self, cfg: Config, on_window: Callable[[Window], None] | None
    ) -> tuple[ScenarioResult, LocalItems | None, float | None]:
        """Run ``cfg`` here: the result, the items (a feed) and when the feed ran dry."""
        local = LocalItems(cfg, self._ident) if cfg.feed is not None else None
        current = self._current = ScenarioRun(
            self, cfg, desk=local.desk if local is not None else None, on_window=on_window
        )
        dry_at: list[float] = []
        if local is not None:

            def dry() -> None:  # the feed ran dry: a rate-mode run ends (a drain ends itself)
                dry_at.append(time.monotonic())
                if not cfg.load.needs_items:  # type: ignore[union-attr]
                    current.stop()

            local.desk.on_dry = dry
        if self._stop_next == "abort":
            current.abort()
        elif self._stop_next == "stop":
            current.stop()
        self._stop_next = None
        try:
            result = await current.run()
        finally:
            self._current = None
            if local is not None:
                await asyncio.to_thread(local.close)
        t0 = current.executor.t0 if current.executor is not None else 0.0
        return result, local, (dry_at[0] - t0 if dry_at else None)

    def _report(self, run: Run, result: ScenarioResult, local: LocalItems | None, elapsed: float) -> Report:
        assert result.tally is not None
        outcome = Outcome(
            run=run,
            tally=result.tally,
            planned={result.name: result.planned},
            elapsed_s=elapsed,
            sent_s=result.sent_s,
            ran_s=result.ran_s,
            stopped_early=result.stopped_early,
            target=target_name(self._target),
            gossip_dropped=result.gossip_dropped,
            notes=list(result.notes),
            items={result.name: local.summary()} if local is not None else {},
        )
        report = build_report(outcome)
        report.workers = [self.summary(report.counts, report.achieved_rps, result)]
        if local is not None:
            report.notes.extend(local.closed_notes)
        return finish_report(report, run)

    def summary(
        self, counts: Any, achieved_rps: float, result: ScenarioResult | None = None, **kw: Any
    ) -> WorkerSummary:
        """This worker's line of a report."""
        return WorkerSummary(
            self._ident, target_kind(self._target), self._config.overtime, counts, achieved_rps,
            reach=None if result is None else result.reach, stopped_s=None if result is None else result.stopped_s,
            **kw,
        )  # fmt: skip

    def work_sync(self, rps: float | None = None, duration: float | None = None) -> Report:
        """The blocking twin of ``work`` (runs its own event loop, uvloop when installed)."""
        return _loop.run(self.work(rps, duration))

    def stop(self) -> None:
        """End the current run early: no further slot is scheduled, calls in flight finish.
        Safe to call from any thread (before a run: the next one begins stopped)."""
        current = self._current
        if current is None:
            self._stop_next = self._stop_next or "stop"
        else:
            current.stop()

    def abort(self) -> None:
        """End the current run at once: no further slot, and every call in flight is
        canceled (counted as failed, ``Interrupted``). Safe to call from any thread."""
        current = self._current
        if current is None:
            self._stop_next = "abort"
        else:
            current.abort()


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
