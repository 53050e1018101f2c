"""Entry points, building up as in pusher: ``hire`` → ``work`` → ``farm`` → ``force``.

``work`` runs one worker in this process. ``farm`` and ``force`` run their workers on separate
processes through the farm's coordinator and agents on loopback, so they use every core and
report exactly like a distributed run; ``processes=False`` keeps them in this process on one
event loop instead (needed for gossip listeners, which live in their worker's process).
Whatever the form, what runs is a ``Run``: ``farm``'s workers are its scenarios (one each,
named by the worker), ``force``'s amount of identical workers is one scenario of that many
times the load, ``Scenario`` records are a run's scenarios as written.

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
from pusher_farm.core.calls import Context
from pusher_farm.core.config import Config
from pusher_farm.core.offers import Offer
from pusher_farm.core.reporting import Outcome, build_report, finish_report
from pusher_farm.core.results import Report
from pusher_farm.core.run import Run
from pusher_farm.core.scenario import Scenario, build_run
from pusher_farm.core.scenario_run import ProcessResult, first_error
from pusher_farm.core.tally import Tally
from pusher_farm.core.window import Window
from pusher_farm.core.worker import Worker, hire, target_name
from pusher_farm.errors import InvalidOption, WorkerBusy, error_of_kind

__all__ = ["farm", "farm_async", "force", "work"]

#: the most local agent processes one call may start
MAX_LOCAL_AGENTS = 1024


def work(rps: float | None, duration: float | None, target: Callable[[Context], Any], *offers: Offer) -> Report:
    """Hire one worker for ``target`` and run it at ``rps`` for ``duration`` seconds."""
    if duration is None:
        raise InvalidOption("work() needs a duration (an open-ended run needs a Worker and stop())")
    return hire("judas", target, *offers).work_sync(rps, duration)


def _check_workers(workers: Sequence[Any]) -> list[Worker]:
    workers = list(workers)
    if not workers:
        raise InvalidOption("farm() needs at least one worker")
    for w in workers:
        if not isinstance(w, Worker):
            raise InvalidOption(f"farm() takes workers made by hire() (or Scenario records), got {w!r}")
    if len({id(w) for w in workers}) != len(workers):
        raise InvalidOption("farm() got the same worker twice: hire one per parallel run")
    for w in workers:
        if w.busy:
            raise WorkerBusy(f"{w.ident!r} is already working: try again when it is done")
    return workers


def _names(workers: Sequence[Worker]) -> list[str]:
    """Each worker's scenario name: its ident (numbered when several share one)."""
    idents = [w.ident for w in workers]
    return [i if idents.count(i) == 1 else f"{i} #{n}" for n, i in enumerate(idents)]


def _run_of(workers: Sequence[Worker], rps: float | None, duration: float | None, **change: Any) -> Run:
    """The run of ``workers``: one scenario each, named by the worker."""
    configs = [w.scenario(rps, duration).replace(name=name, **change) for w, name in zip(workers, _names(workers),
                                                                                        strict=True)]  # fmt: skip
    if sum(1 for c in configs if c.feed is not None) > 1 and len({id(c.feed) for c in configs}) < len(configs):
        raise InvalidOption("several workers share one feed: each would read all of it; hire one worker with more "
                            "lanes (with_items(parallel=N)), or give each its own feed")  # fmt: skip
    return Run.of(configs)


async def farm_async(rps: float | None, duration: float | None, workers: Sequence[Worker]) -> Report:
    """Run ``workers`` in this process, in parallel, each at ``rps``. The first error cancels
    them all and is raised as itself (as in pusher). The report merges every worker's windows
    exactly (``workers`` lists each)."""
    workers = _check_workers(workers)
    run = _run_of(workers, rps, duration)
    if len(run.with_feeds()) > 1:
        raise InvalidOption(
            "several workers in one process would each read the whole feed: run them on processes (the "
            "coordinator deals the items), or hire one worker with more parallel lanes"
        )
    tally = Tally(run.settings.window, max(c.max_names for c in run))
    started = time.monotonic()
    for w in workers:
        w._busy = True
    try:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(w._run(c, tally.add)) for w, c in zip(workers, run, strict=True)]
        except BaseExceptionGroup as failed:
            raise first_error(failed) from None
    finally:
        for w in workers:
            w._busy = False
        for target in {id(w.target): w.target for w in workers}.values():
            aclose = getattr(target, "aclose", None)
            if aclose is not None:
                await aclose()
    done = [t.result() for t in tasks]
    together = ProcessResult.of([r for r, _, _ in done])
    outcome = Outcome(
        run=run,
        tally=tally,
        planned={r.name: r.planned for r in together.results},
        elapsed_s=time.monotonic() - started,
        sent_s=together.sent_s,
        ran_s=together.ran_s,
        stopped_early=together.stopped_early,
        target=", ".join(dict.fromkeys(target_name(w.target) for w in workers)),
        gossip_dropped=together.gossip_dropped,
        notes=list(together.notes),
        items={r.name: local.summary() for r, local, _ in done if local is not None},
    )
    report = build_report(outcome)
    report.workers = [
        w.summary(row.counts, row.achieved_rps, r)
        for w, r, row in zip(workers, together.results, report.scenarios, strict=True)
    ]
    return finish_report(report, run)


def _on_processes(
    run: Run, agents: int, *, on_window: Callable[[Window], None] | None, control: tuple[str | None, str | None]
) -> tuple[Report, Any]:
    """Run ``run`` on ``agents`` local agent processes (``control``: the address and token of its
    HTTP side, if any): the report and how the run finished."""
    from pusher_farm.cluster.spawn import run_local

    for c in run:
        if c.listeners:
            raise InvalidOption(
                f"scenario {c.name!r} has gossip listeners, which live in its own process: pass processes=False"
            )
    address, token = control
    if token and not address:
        raise InvalidOption("control_token goes with control='HOST:PORT'")
    server = None
    if address is not None:
        from pusher_farm.report.serving import serve_control

        server = serve_control(address, token)
    coordinators: list[Any] = []
    report = run_local(run, agents, listeners=[on_window] if on_window else [], on_coordinator=coordinators.append,
                       control=server)  # fmt: skip
    return report, coordinators[0].finish


def _raise_first(finish: Any) -> None:
    """A run that failed (not a stop): its first error, as the seed raises it."""
    if finish is not None and not finish.ok and not finish.reason.startswith("stopped"):
        raise error_of_kind(finish.kind, finish.error)


def _named(scenario: Scenario) -> Scenario:
    """``scenario`` with a function target by name: agents import it by its module path."""
    if not callable(scenario.target):
        return scenario
    from pusher_farm.targets import spec_of

    target, params = spec_of(scenario.target)
    return dataclasses.replace(scenario, target=target, params={**params, **scenario.params})


def _agents(agents: int | None) -> int:
    import os

    n = (os.cpu_count() or 1) if agents is None else agents
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LOCAL_AGENTS:
        raise InvalidOption(f"agents must be a whole number from 1 to {MAX_LOCAL_AGENTS}, got {agents!r}")
    return n


def farm(
    rps: float | None,
    duration: float | None,
    workers: Sequence[Worker] | Sequence[Scenario],
    *,
    processes: bool = True,
    on_window: Callable[[Window], None] | None = None,
    agents: int | None = None,
    settings: Config | None = None,
    control: str | None = None,
    control_token: str | None = None,
) -> Report:
    """Run ``workers`` in parallel, each at ``rps`` for ``duration`` seconds, one process each
    (``processes=False``: all in this process). ``on_window`` receives each merged window of
    the whole farm. A target must be importable by module path to run on another process.

    Given ``Scenario`` records instead of workers, run them all at once for ``duration``
    seconds (each has its own load: give no ``rps``) on ``agents`` local agent processes
    (default: one per core), every scenario sharded among them; ``settings`` holds the run's
    own (window, thresholds, policies).

    ``control="HOST:PORT"`` serves the run's HTTP side while it runs (its state, metrics, the
    live page, and ``PATCH /farm`` to change a scenario's rate, users, lanes or cap at runtime;
    Gofherd's ``PATCH /herd``), as ``farm run --http`` does: beyond loopback it needs
    ``control_token``."""
    where = (control, control_token)
    if workers and all(isinstance(w, Scenario) for w in workers):
        if rps is not None:
            raise InvalidOption("scenarios carry their own load: give rps=None")
        run = build_run([_named(s) for s in workers], duration=duration, settings=settings)  # type: ignore[arg-type]
        return _on_processes(run, _agents(agents), on_window=on_window, control=where)[0]
    if agents is not None or settings is not None:
        raise InvalidOption("agents= and settings= go with Scenario records (workers run one process each)")
    workers = _check_workers(workers)
    if not processes:
        if on_window is not None or control is not None:
            raise InvalidOption("on_window and control need processes=True (in-process: Worker.work(on_window=...))")
        return _loop.run(farm_async(rps, duration, workers))
    run = _by_name(_run_of(workers, rps, duration, on_agent_loss="abort"), workers)
    report, finish = _worked(run, workers, on_window, where)
    _raise_first(finish)
    report.workers = [w.summary(row.counts, row.achieved_rps) for w, row in zip(workers, report.scenarios,
                                                                                  strict=True)]  # fmt: skip
    return report


def _by_name(run: Run, workers: Sequence[Worker]) -> Run:
    """``run`` with each worker's target by name (agents import it by its module path)."""
    from pusher_farm.targets import spec_of

    scenarios = []
    for c, w in zip(run, workers, strict=True):
        name, params = spec_of(w.target)
        scenarios.append(c.replace(target=name, params=params))
    return Run(run.settings, tuple(scenarios))


def _worked(
    run: Run, workers: Sequence[Worker], on_window: Callable[[Window], None] | None, control: tuple[Any, Any]
) -> tuple[Report, Any]:
    """``run`` on one local agent per worker, the workers busy meanwhile."""
    for w in workers:
        w._busy = True
    try:
        return _on_processes(run, len(workers), on_window=on_window, control=control)
    finally:
        for w in workers:
            w._busy = False


def force(
    rps: float | None,
    duration: float | None,
    target: Callable[[Context], Any],
    *offers: Offer,
    processes: bool = True,
) -> Callable[[int], Report]:
    """``force(rps, duration, target, *offers)(amount)`` runs ``amount`` identical workers,
    each at ``rps`` (so the total is ``amount * rps``; a profile, users or drain lanes are
    multiplied the same way). On processes they are one farm-wide schedule of that total, its
    slots interleaved evenly among ``amount`` agents."""

    def run(amount: int) -> Report:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise InvalidOption(f"force needs a positive number of workers, got {amount!r}")
        workers = [hire(f"force #{i}", target, *offers) for i in range(amount)]
        if not processes:
            return _loop.run(farm_async(rps, duration, workers))
        one = workers[0]
        config = one.scenario(rps, duration)
        assert config.load is not None
        scenario = config.replace(name="force", load=config.load.scaled(amount), on_agent_loss="abort")
        report, finish = _worked(_by_name(Run.of([scenario]), [one]), workers, None, (None, None))
        _raise_first(finish)
        span = max(report.duration_s, report.send_duration_s)
        report.workers = [
            w.summary(a.counts, (a.counts.succeeded + a.counts.failed) / span if span > 0 else 0.0, agent=a.id)
            for w, a in zip(workers, report.agents, strict=False)
        ]
        return report

    return run
