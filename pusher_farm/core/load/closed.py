"""The closed model: users, each a loop calling the target back to back with a think time.

k6's constant-vus, ramping-vus and per-vu-iterations, Locust's users. The number of users
follows a profile over time (constant, or stages; a scenario that starts later begins with a
stage of 0 users); in a farm, user ``j`` belongs to the agent whose shard owns global slot
``j``, so the users split by weight and each runs once in the whole farm. A user past the
current count finishes its call and leaves (it comes back if the count rises again, its
iterations kept); with ``iterations`` each user makes that many calls, then leaves. A farm's
new epoch (an agent lost or joining, or a change of the count) moves users at one instant: a
user this agent no longer owns leaves after its call, one it now owns starts (with the
iterations it made here, if any: another agent's count is not known).

A closed loop waits for each call before the next, so it cannot measure coordinated omission:
every call's intended start is its actual start, latency equals service time, and the output
is the throughput the users reached, not a rate asked for. A user that finds every allowed
call in flight (overtime), or no work item ready, waits for a call to end: nothing is launched,
so nothing is canceled.

Every user task is owned by the pacer's task group: stopping the run cancels them all; the
calls in flight finish (or time out) like any other.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pusher_farm.core.epochs import HALT
from pusher_farm.core.load.model import Load, members_at, profile_wire
from pusher_farm.core.schedule import Constant, Profile
from pusher_farm.errors import InvalidOption

if TYPE_CHECKING:
    from pusher_farm.core.executor import Executor

__all__ = ["MAX_USERS", "Closed"]

#: the most users a scenario may have
MAX_USERS = 1_000_000
#: items an agent holds per user it runs
_ITEMS_PER_MEMBER = 4
#: how often the count of users is looked at (new users start within this long)
_TICK = 0.02
#: a later scenario's start is waited for in steps this long (a stop before it is noticed)
_LONGEST_WAIT = 0.05


@dataclass(frozen=True)
class Closed(Load):
    """``profile`` users (a count over the run's clock), each pausing ``think`` seconds after
    each call (``(low, high)``: uniform between), ``iterations`` calls each (0: no bound)."""

    profile: Profile
    think: tuple[float, float] = (0.0, 0.0)
    iterations: int = 0

    kind = "closed"
    knobs = ("users",)

    def __post_init__(self) -> None:
        if not isinstance(self.profile, Profile):
            raise InvalidOption(f"users must be a count or stages of users, got {self.profile!r}")
        if self.profile.peak > MAX_USERS:
            raise InvalidOption(f"users must be at most {MAX_USERS:,}, got {self.profile.peak:g}")
        low, high = self.think
        if not (0 <= low <= high <= 3600):
            raise InvalidOption(f"think time must go from low to high within an hour, got {low:g}..{high:g}s")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or not 0 <= self.iterations:
            raise InvalidOption(f"iterations must be a whole number >= 0 (0: no bound), got {self.iterations!r}")

    def describe(self) -> str:
        begins = self.begins
        users = self.profile
        after = users.stages[1:] if begins else users.stages
        flat = len(after) == 1 and after[0].start == after[0].end
        text = f"{after[0].start:g} users" if flat else f"users {users.describe()}"
        if begins and flat:
            text = f"from {begins:g}s: {text}"
        low, high = self.think
        if high:
            text += f", think {low * 1000:g}" + (f"-{high * 1000:g}" if high != low else "") + " ms"
        if self.iterations:
            text += f", {self.iterations} iterations each"
        return text

    def _changed(self, at_s: float, changes: Mapping[str, float]) -> Load:
        users = changes["users"]
        if users != int(users) or not 0 <= users <= MAX_USERS:
            raise InvalidOption(f"users must be a whole number in 0..{MAX_USERS:,}, got {users:g}")
        return Closed(self.profile.then(at_s, users), self.think, self.iterations)

    def credit(self, share: float) -> int:
        return int(_ITEMS_PER_MEMBER * self.profile.peak * share)

    def scaled(self, factor: float) -> Load:
        return Closed(self.profile.scaled(factor), self.think, self.iterations)

    def cut(self, seconds: float | None) -> Load:
        return Closed(self.profile.cut(seconds), self.think, self.iterations)

    def run(self, executor: Executor) -> Any:
        return _users(executor)

    def _wire(self) -> dict[str, Any]:
        return {"think": list(self.think), "iterations": self.iterations}

    def _plain(self) -> dict[str, Any]:
        return {"profile": None, "users": profile_wire(self.profile), **self._wire()}

    @classmethod
    def _from_wire(cls, profile: Profile, data: Mapping[str, Any]) -> Load:
        think = data.get("think", [0.0, 0.0])
        if not isinstance(think, list) or len(think) != 2 or not all(_number(v) for v in think):
            raise InvalidOption("think must be [low, high] seconds")
        iterations = data.get("iterations", 0)
        return cls(profile, (float(think[0]), float(think[1])), iterations)

    @classmethod
    def users(cls, count: int, duration: float | None = None, **kw: Any) -> Closed:
        """``count`` users for ``duration`` seconds (None: until their iterations are made, or
        the run is stopped)."""
        return cls(Constant(count, duration), **kw)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


async def _users(executor: Executor) -> None:
    """The closed model's pacer for ``executor`` (see the module docstring)."""
    calls, clock, plan, t0 = executor.calls, executor.clock, executor.plan, executor.t0
    assert calls is not None
    model: Closed = executor.load  # type: ignore[assignment]
    low, high = model.think
    iterations = model.iterations

    def mine(j: int, now: float) -> bool:
        """Whether user ``j`` is this agent's at ``now`` (the epoch in force then)."""
        shard = plan.at_time(max(now - t0, 0.0))  # a timer may wake a hair before the start
        if shard is False or shard is HALT:
            return False
        return shard is None or shard.owns(j)  # type: ignore[union-attr]

    def count(now: float) -> int:
        return executor.load.members_at(now - t0)

    rng = random.Random()
    done_calls: dict[int, int] = {}  # calls made by each user (kept while it is away)
    running: dict[int, asyncio.Task[None]] = {}
    desk = executor.items
    slots = iter(range(1 << 62))  # this agent's calls, numbered as they start

    def over(now: float) -> bool:
        """No user may start a call at ``now``: the scenario's end, a stop, a lapsed lease."""
        return now >= t0 + executor.load.length() or now - t0 >= plan.halt_s() or now > executor.lease_until

    room = asyncio.Event()
    calls.on_free = room.set

    async def user(j: int) -> None:
        while True:
            now = clock()
            if over(now) or j >= count(now) or not mine(j, now):
                return
            if iterations and done_calls.get(j, 0) >= iterations:
                return
            if calls.in_flight >= calls.overtime or (desk is not None and not desk.ready(now)):
                if desk is not None and desk.dry:
                    return
                room.clear()
                await room.wait()
                continue
            ended = asyncio.get_running_loop().create_future()
            executor.started += 1  # planned: every call it started (or canceled)
            if not calls.launch(next(slots), now, now, on_end=lambda f=ended: f.done() or f.set_result(None)):
                continue
            done_calls[j] = done_calls.get(j, 0) + 1
            await ended
            pause = low if high == low else rng.uniform(low, high)
            if pause > 0:
                await asyncio.sleep(pause)

    try:
        async with asyncio.TaskGroup() as group:
            begin = t0 + executor.load.begins
            while begin > clock() and not over(clock()):  # a later start: keep looking at the stop
                await asyncio.sleep(min(begin - clock(), _LONGEST_WAIT))
            while True:
                now = clock()
                if now > executor.lease_until:
                    executor.expire_lease()
                    break
                if now >= t0 + executor.load.length() or (desk is not None and desk.dry):
                    break
                if now - t0 >= plan.halt_s():
                    executor.mark_stopped()
                    break
                for j in range(count(now)):
                    if j in running or not mine(j, now):
                        continue
                    if iterations and done_calls.get(j, 0) >= iterations:
                        continue
                    task = running[j] = group.create_task(user(j))
                    task.add_done_callback(lambda _t, j=j: running.pop(j, None))
                if iterations and not running and _all_done(done_calls, iterations, executor.load, mine, now):
                    break  # every user of this agent made its calls
                room.set()  # waiting users look at the clock at least this often
                await asyncio.sleep(min(_TICK, max(t0 + executor.load.length() - clock(), 0.0)))
            # The users leave now: those thinking or waiting for their call are cancelled (their
            # calls in flight belong to the executor, which lets them finish within the timeout).
            for task in list(running.values()):
                task.cancel()
    finally:
        calls.on_free = None


def _all_done(done: dict[int, int], iterations: int, model: Load, mine: Any, now: float) -> bool:
    """Every user of this agent (up to the profile's peak) made its ``iterations`` calls."""
    return all(done.get(j, 0) >= iterations for j in range(members_at(model.profile.peak)) if mine(j, now))
