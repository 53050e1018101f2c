"""Entry points, building up as in pusher: ``hire`` → ``work`` → ``farm`` → ``force``.

``work``, ``farm`` and ``force`` block and return a ``Report``; inside a running event loop use
``await worker.work(...)`` or ``await farm_async(...)``. Here the workers of ``farm`` and
``force`` share one process and one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from pusher_farm.core import loop as _loop
from pusher_farm.core.config import Offer
from pusher_farm.core.executor import Context
from pusher_farm.core.report import Report
from pusher_farm.core.window import Tally
from pusher_farm.core.worker import Worker, hire
from pusher_farm.errors import InvalidOption

__all__ = ["farm", "farm_async", "force", "work"]


def work(rps: float | None, duration: float | None, target: Callable[[Context], Any], *offers: Offer) -> Report:
    """Hire one worker for ``target`` and run it at ``rps`` for ``duration`` seconds."""
    if duration is None:
        raise InvalidOption("work() needs a duration (an open-ended run needs a Worker and stop())")
    return hire("judas", target, *offers).work_sync(rps, duration)


async def farm_async(rps: float | None, duration: float | None, workers: Sequence[Worker]) -> Report:
    """Run ``workers`` in parallel, each at ``rps``; the first error cancels them all.

    The report merges every worker's windows exactly (its ``workers`` lists each one).
    """
    workers = list(workers)
    if not workers:
        raise InvalidOption("farm() needs at least one worker")
    for w in workers:
        if not isinstance(w, Worker):
            raise InvalidOption(f"farm() takes workers made by hire(), got {w!r}")
    if len({id(w) for w in workers}) != len(workers):
        raise InvalidOption("farm() got the same worker twice: hire one per parallel run")
    tally = Tally(workers[0].config().window)
    started = time.monotonic()
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(w.work(rps, duration, on_window=tally.add, close_target=False)) for w in workers]
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
        elapsed_s=time.monotonic() - started,
        profile=first.profile,
        overtime=sum(r.overtime for r in reports),
        timeout_s=first.timeout_s,
        stopped_early=any(r.stopped_early for r in reports),
        gossip_dropped=sum(r.gossip_dropped for r in reports),
        notes=[n for r in reports for n in r.notes],
        workers=[
            {**r.workers[0], "counts": r.to_dict()["counts"], "achieved_rps": round(r.achieved_rps, 3)} for r in reports
        ],
    )


def farm(rps: float | None, duration: float | None, workers: Sequence[Worker]) -> Report:
    """Blocking ``farm_async``."""
    return _loop.run(farm_async(rps, duration, workers))


def force(
    rps: float | None, duration: float | None, target: Callable[[Context], Any], *offers: Offer
) -> Callable[[int], Report]:
    """``force(rps, duration, target, *offers)(amount)`` runs ``amount`` identical workers,
    each at ``rps`` (so the total is ``amount * rps``)."""

    def run(amount: int) -> Report:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise InvalidOption(f"force needs a positive number of workers, got {amount!r}")
        return farm(rps, duration, [hire(f"force #{i}", target, *offers) for i in range(amount)])

    return run
