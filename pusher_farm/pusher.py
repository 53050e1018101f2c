"""Entry points, building up as in pusher: ``hire`` → ``work`` → ``farm`` → ``force``.

``work`` runs one worker in this process. ``farm`` and ``force`` run their workers on separate
processes (one each) through the farm's coordinator and agents on loopback, so they use every
core and report exactly like a distributed run; ``processes=False`` keeps them in this process
on one event loop instead (needed for gossip listeners, which live in their worker's process).

The blocking forms return a ``Report``; inside a running event loop use ``await
worker.work(...)`` or ``await farm_async(...)`` (in-process).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from pusher_farm.core import loop as _loop
from pusher_farm.core.calls import Context, target_kind
from pusher_farm.core.config import Config
from pusher_farm.core.offers import Offer
from pusher_farm.core.report import Report, WorkerSummary
from pusher_farm.core.scenario import Scenario, scenario_configs
from pusher_farm.core.schedule import Constant
from pusher_farm.core.tally import Tally
from pusher_farm.core.window import Window
from pusher_farm.core.worker import Worker, hire, resolve_profile
from pusher_farm.errors import InvalidOption, WorkerBusy, error_of_kind

__all__ = ["farm", "farm_async", "force", "work"]


def work(rps: float | None, duration: float | None, target: Callable[[Context], Any], *offers: Offer) -> Report:
    """Hire one worker for ``target`` and run it at ``rps`` for ``duration`` seconds."""
    if duration is None:
        raise InvalidOption("work() needs a duration (an open-ended run needs a Worker and stop())")
    return hire("judas", target, *offers).work_sync(rps, duration)


def _check_workers(workers: Sequence[Worker]) -> list[Worker]:
    workers = list(workers)
    if not workers:
        raise InvalidOption("farm() needs at least one worker")
    for w in workers:
        if not isinstance(w, Worker):
            raise InvalidOption(f"farm() takes workers made by hire(), got {w!r}")
    if len({id(w) for w in workers}) != len(workers):
        raise InvalidOption("farm() got the same worker twice: hire one per parallel run")
    return workers


async def farm_async(rps: float | None, duration: float | None, workers: Sequence[Worker]) -> Report:
    """Run ``workers`` in this process, in parallel, each at ``rps``. The first error cancels
    them all and is raised as itself (as in pusher). The report merges every worker's windows
    exactly (``workers`` lists each)."""
    workers = _check_workers(workers)
    if len(workers) > 1 and any(w.config().feed is not None for w in workers):
        raise InvalidOption(
            "several workers in one process would each read the whole feed: run them on processes (the "
            "coordinator deals the items), or hire one worker with more parallel lanes"
        )
    tally = Tally(workers[0].config().window)
    started = time.monotonic()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(w.work(rps, duration, on_window=tally.add, close_target=False)) for w in workers]
    except ExceptionGroup as group_error:
        raise _first(group_error) from None
    finally:
        for target in {id(w.target): w.target for w in workers}.values():
            aclose = getattr(target, "aclose", None)
            if aclose is not None:
                await aclose()
    reports = [t.result() for t in tasks]
    first = reports[0]
    return Report.from_tally(
        tally,
        target=first.target,
        requested_rps=sum(r.requested_rps for r in reports),
        duration_s=max(r.duration_s for r in reports),
        send_duration_s=max(r.send_duration_s for r in reports),
        ran_s=max(r.ran_s for r in reports),
        elapsed_s=time.monotonic() - started,
        planned=sum(r.counts.planned for r in reports),
        profile=first.profile,
        overtime=max(r.overtime for r in reports),
        timeout_s=first.timeout_s,
        stopped_early=any(r.stopped_early for r in reports),
        gossip_dropped=sum(r.gossip_dropped for r in reports),
        notes=[n for r in reports for n in r.notes],
        workers=[r.workers[0] for r in reports],
    )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a task group (the one that cancelled the others), itself."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _on_processes(
    rps: float | None,
    duration: float | None,
    workers: list[Worker],
    *,
    sharded: bool,
    on_window: Callable[[Window], None] | None,
) -> Report:
    from pusher_farm.cluster.coordinator import Coordinator
    from pusher_farm.cluster.local import run_local
    from pusher_farm.cluster.plan import RunSpec
    from pusher_farm.targets import spec_of

    configs = []
    for w in workers:
        cfg = w.config()
        if cfg.listeners:
            raise InvalidOption(
                f"worker {w.ident!r} has gossip listeners, which live in its own process: pass "
                "processes=False, or give agents their listeners with `farm agent --gossip MODULE:ATTR`"
            )
        if w.busy:
            raise WorkerBusy(f"{w.ident!r} is already working: try again when it is done")
        name, params = spec_of(w.target)
        drain_uncapped = cfg.parallel and rps is None and cfg.profile is None
        profile = None if drain_uncapped else resolve_profile(rps, duration, cfg.profile)
        # The first error cancels every worker: a lost agent aborts the run.
        configs.append(cfg.replace(target=name, params=params, profile=profile, until=duration, on_agent_loss="abort"))
    if sharded:
        configs = [configs[0] if rps is None else configs[0].replace(profile=Constant(rps * len(workers), duration))]
    spec = RunSpec(tuple(configs))
    coordinators: list[Coordinator] = []
    for w in workers:
        w._busy = True
    try:
        report = run_local(
            spec, len(workers), listeners=[on_window] if on_window else [], on_coordinator=coordinators.append
        )
    finally:
        for w in workers:
            w._busy = False
    finish = coordinators[0].finish
    if finish is not None and not finish.ok and not finish.reason.startswith("stopped"):
        raise error_of_kind(finish.kind, finish.error)
    span = max(report.duration_s, report.send_duration_s)
    report.workers = [
        WorkerSummary(
            w.ident,
            target_kind(w.target),
            w.config().overtime,
            a.counts,
            (a.counts.succeeded + a.counts.failed) / span if span > 0 else 0.0,
            agent=a.id,
        )
        for w, a in zip(workers, report.agents, strict=False)
    ]
    return report


def _scenarios(
    scenarios: list[Scenario],
    duration: float | None,
    agents: int | None,
    settings: Config | None,
    on_window: Callable[[Window], None] | None,
) -> Report:
    import os

    from pusher_farm.cluster.local import run_local
    from pusher_farm.cluster.plan import RunSpec
    from pusher_farm.targets import spec_of

    n = (os.cpu_count() or 1) if agents is None else agents
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1024:
        raise InvalidOption(f"agents must be a whole number from 1 to 1024, got {agents!r}")
    named = []
    for s in scenarios:
        if callable(s.target):  # a function: agents import it by its module path
            target, params = spec_of(s.target)
            s = dataclasses.replace(s, target=target, params={**params, **s.params})
        named.append(s)
    configs = scenario_configs(named, duration=duration, base=settings or Config())
    return run_local(RunSpec(configs, scenarios=True), n, listeners=[on_window] if on_window else [])


def farm(
    rps: float | None,
    duration: float | None,
    workers: Sequence[Worker] | Sequence[Scenario],
    *,
    processes: bool = True,
    on_window: Callable[[Window], None] | None = None,
    agents: int | None = None,
    settings: Config | None = None,
) -> Report:
    """Run ``workers`` in parallel, each at ``rps`` for ``duration`` seconds, one process each
    (``processes=False``: all in this process). ``on_window`` receives each merged window of
    the whole farm. A target must be importable by module path to run on another process.

    Given ``Scenario`` records instead of workers, run them all at once for ``duration``
    seconds (each has its own load: give no ``rps``) on ``agents`` local agent processes
    (default: one per core), every scenario sharded among them; ``settings`` holds the run's
    own (window, thresholds, policies)."""
    if workers and all(isinstance(w, Scenario) for w in workers):
        if rps is not None:
            raise InvalidOption("scenarios carry their own load: give rps=None")
        return _scenarios(list(workers), duration, agents, settings, on_window)  # type: ignore[arg-type]
    if agents is not None or settings is not None:
        raise InvalidOption("agents= and settings= go with Scenario records (workers run one process each)")
    workers = _check_workers(workers)  # type: ignore[arg-type]
    if not processes:
        if on_window is not None:
            raise InvalidOption("on_window needs processes=True (use Worker.work(on_window=...) in-process)")
        return _loop.run(farm_async(rps, duration, workers))
    if duration is None and not workers[0].config().parallel:
        raise InvalidOption("farm() on processes needs a duration (or drain lanes: with_items(parallel=N))")
    return _on_processes(rps, duration, workers, sharded=False, on_window=on_window)


def force(
    rps: float | None,
    duration: float | None,
    target: Callable[[Context], Any],
    *offers: Offer,
    processes: bool = True,
) -> Callable[[int], Report]:
    """``force(rps, duration, target, *offers)(amount)`` runs ``amount`` identical workers,
    each at ``rps`` (so the total is ``amount * rps``). On processes at a constant rate their
    slots interleave evenly, as one farm-wide schedule; with a profile (``with_profile``) each
    worker follows it whole, at the same instants as the others."""

    def run(amount: int) -> Report:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise InvalidOption(f"force needs a positive number of workers, got {amount!r}")
        workers = [hire(f"force #{i}", target, *offers) for i in range(amount)]
        if not processes:
            return _loop.run(farm_async(rps, duration, workers))
        if duration is None and not workers[0].config().parallel:
            raise InvalidOption("force() on processes needs a duration (or drain lanes: with_items(parallel=N))")
        if workers[0].config().profile is not None:
            return _on_processes(None, duration, workers, sharded=False, on_window=None)
        return _on_processes(rps, duration, workers, sharded=True, on_window=None)

    return run
