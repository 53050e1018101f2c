"""The closed model: users, each a loop calling the target back to back with a think time.

k6's constant-vus, ramping-vus and per-vu-iterations, Locust's users. The number of users
follows a profile over time (``Config.users``: constant, or stages); in a farm, user ``j``
belongs to the agent whose shard owns global slot ``j``, so the users split by weight and
each runs once in the whole farm. A user past the current count finishes its call and
leaves (it comes back if the count rises again, its iterations kept); with ``iterations``
each user makes that many calls, then leaves. A farm's new epoch (an agent lost or joining)
moves users at one instant: a user this agent no longer owns leaves after its call, one it now
owns starts (with the iterations it made here, if any: another agent's count is not known).

A closed loop waits for each call before the next, so it cannot measure coordinated omission:
every call's intended start is its actual start, latency equals service time, and the output
is the throughput the users reached, not a rate asked for.

Every user task is owned by the pacer's task group: stopping the run cancels them all; the
calls in flight finish (or time out) like any other.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from pusher_farm.core.shard import Shard

if TYPE_CHECKING:
    from pusher_farm.core.executor import Executor

__all__ = ["run_users", "users_at"]

#: how often the count of users is looked at (new users start within this long)
_TICK = 0.02
#: a later scenario's start is waited for in steps this long (a stop before it is noticed)
_LONGEST_WAIT = 0.05


def users_at(count: float) -> int:
    """Users at a point of the profile: the count rounded down (a hair under a whole number
    counts as it: float stages must not lose a user)."""
    return max(math.floor(count + 1e-9), 0)


def _peak(users: object) -> float:
    return max(max(s.start, s.end) for s in users.stages)  # type: ignore[attr-defined]


async def run_users(executor: Executor) -> None:
    """The closed model's pacer for ``executor`` (its config has ``users``)."""
    cfg = executor.config
    users = cfg.users
    assert users is not None and executor.calls is not None
    calls, clock = executor.calls, executor.clock
    owners: dict[Shard | None, Callable[[int], bool]] = {}

    def owner(shard: Shard | None) -> Callable[[int], bool]:
        test = owners.get(shard)
        if test is None:
            if shard is None:
                test = lambda j: True  # noqa: E731
            else:
                period, offsets = shard.cycle()
                owned = frozenset(offsets.tolist())
                test = lambda j: j % period in owned  # noqa: E731
            owners[shard] = test
        return test

    def mine(j: int, now: float) -> bool:
        """Whether user ``j`` is this agent's at ``now`` (the epoch in force then)."""
        at = max(now - executor.t0, 0.0)  # a timer may wake a hair before the start
        current = None
        for start, shard in executor.user_epochs:
            if start > at:
                break
            current = (shard,)
        return current is not None and owner(current[0])(j)

    begin = executor.t0 + cfg.start
    end = begin + cfg.length()
    low, high = cfg.think
    rng = random.Random()
    done_calls: dict[int, int] = {}  # calls made by each user (kept while it is away)
    running: dict[int, asyncio.Task[None]] = {}
    desk = executor.items
    slots = iter(range(1 << 62))  # this agent's calls, numbered as they start

    def over(now: float) -> bool:
        """No user may start a call at ``now``: the scenario's end, a stop, a lapsed lease."""
        return now >= end or now - executor.t0 >= executor.users_until or now > executor.lease_until

    # A user that finds every allowed call in flight (overtime), or no work item ready, waits
    # for a call to end (or the next look at the clock): nothing is launched, so nothing is
    # canceled; a closed loop has no schedule for a slot to miss.
    room = asyncio.Event()
    calls.on_free = room.set

    async def user(j: int) -> None:
        while True:
            now = clock()
            if over(now) or j >= users_at(users.rate_at(now - begin)) or not mine(j, now):
                return
            if cfg.iterations and done_calls.get(j, 0) >= cfg.iterations:
                return
            if calls.in_flight >= calls.overtime or (desk is not None and not desk.ready(now)):
                if desk is not None and desk.dry:
                    return
                room.clear()
                await room.wait()
                continue
            ended = asyncio.get_running_loop().create_future()
            executor.reach = (executor.reach or 0) + 1  # planned: every call it started (or canceled)
            if not calls.launch(next(slots), now, now, on_end=lambda f=ended: f.done() or f.set_result(None)):
                continue
            done_calls[j] = done_calls.get(j, 0) + 1
            await ended
            pause = low if high == low else rng.uniform(low, high)
            if pause > 0:
                await asyncio.sleep(pause)

    try:
        async with asyncio.TaskGroup() as group:
            while begin > clock() and not over(clock()):  # a later start: keep looking at the stop
                await asyncio.sleep(min(begin - clock(), _LONGEST_WAIT))
            while True:
                now = clock()
                if now > executor.lease_until:
                    executor._lease_over()
                    break
                if now >= end or (desk is not None and desk.dry):
                    break
                if now - executor.t0 >= executor.users_until:
                    executor._stopped()
                    break
                count = users_at(users.rate_at(now - begin))
                for j in range(count):
                    if j in running or not mine(j, now):
                        continue
                    if cfg.iterations and done_calls.get(j, 0) >= cfg.iterations:
                        continue
                    task = running[j] = group.create_task(user(j))
                    task.add_done_callback(lambda _t, j=j: running.pop(j, None))
                if (
                    cfg.iterations
                    and not running
                    and all(
                        done_calls.get(j, 0) >= cfg.iterations for j in range(users_at(_peak(users))) if mine(j, now)
                    )
                ):
                    break  # every user of this agent made its calls
                room.set()  # waiting users look at the clock at least this often
                await asyncio.sleep(min(_TICK, max(end - clock(), 0.0)))
            # The users leave now: those thinking or waiting for their call are cancelled (their
            # calls in flight belong to the executor, which lets them finish within the timeout).
            for task in list(running.values()):
                task.cancel()
    finally:
        calls.on_free = None
