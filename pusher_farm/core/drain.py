"""Drain mode's pacer: ``parallel`` lanes, each on the next work item, until none is left.

The lanes of a closed loop on items (k6's shared-iterations): a call's intended start is its
start, so a drain measures service time; an optional rate cap (the agent's share of ``--rps``)
spaces the starts. Owned by the executor's pacer task like the open-loop pacer.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from pusher_farm.core.pacer import LAUNCHES_BEFORE_YIELD, LONGEST_SLEEP
from pusher_farm.core.shard import Shard

if TYPE_CHECKING:
    from pusher_farm.core.executor import Executor

__all__ = ["run_lanes"]

#: out of items: look for new ones this often (a farm agent's come from its control thread)
_STARVED_POLL = 0.005


async def run_lanes(self: Executor) -> None:
    """Drain mode: keep ``parallel`` calls going, each on the next item, until the desk is
    dry (or the run is cut, stopped or its lease lapses). With a profile (a rate cap), call
    ``k`` starts no earlier than the profile's slot ``k``. A call's intended start is its
    start: a closed loop measures service time."""
    calls, desk, clock = self.calls, self.items, self.clock
    assert calls is not None and desk is not None
    loop = asyncio.get_running_loop()
    lanes = self.config.parallel
    t0 = self.t0
    # a rate cap (a constant rate; this agent's share of it in a farm)
    shard = self._epochs[0][1]
    share = shard.share if isinstance(shard, Shard) else 1.0
    gap = 0.0 if self.profile is None else 1.0 / (self.profile.rate_at(0.0) * share)
    end = t0 + self.config.until if self.config.until is not None else math.inf
    wake = asyncio.Event()
    calls.on_free = wake.set
    k = self.first_slot
    try:
        while True:
            now = clock()
            if now > self.lease_until:
                return self._lease_over()
            if now >= end:
                return self._stopped()
            due = t0 + (k - self.first_slot) * gap
            burst = 0
            while calls.in_flight < lanes and due <= now and desk.ready(now):
                calls.launch(k, now, now)
                k += 1
                self.reach = k
                burst += 1
                if burst >= LAUNCHES_BEFORE_YIELD:
                    await asyncio.sleep(0)
                    burst = 0
                    now = clock()
                due = t0 + (k - self.first_slot) * gap
            if desk.dry:
                return
            # Every lane busy: a call's end wakes us. A lane free: the cap's next start, a
            # retry falling due, or new items (which may come from another thread).
            wait = LONGEST_SLEEP
            if calls.in_flight < lanes:
                if due > now:
                    wait = min(wait, due - now)
                else:
                    retry = desk.next_retry()
                    if retry is not None and retry > now:
                        wait = min(wait, retry - now)
                    if not desk.supply.has_next():
                        wait = min(wait, _STARVED_POLL)
            wake.clear()
            if wait > 0:
                timer = loop.call_later(wait, wake.set)
                await wake.wait()
                timer.cancel()
            else:
                await asyncio.sleep(0)
    finally:
        calls.on_free = None
