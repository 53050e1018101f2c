"""Drain mode: ``parallel`` lanes, each on the next work item, until every item is done.

The lanes of a closed loop on a feed (k6's shared-iterations, Gofherd's herd of gophers): a
call's intended start is its start, so a drain measures service time. The number of lanes is a
count over the run's clock like the closed model's users, and splits among a farm's agents the
same way (lane ``j`` on the agent whose shard owns slot ``j``); a runtime change of it is
Gofherd's herd size: 0 pauses the drain (calls in flight finish, none starts), a larger number
resumes and grows it, from one instant on every agent. An optional rate cap (``cap``, the whole
farm's calls per second, each agent its share) spaces the starts.

The pacer launches calls while a lane is free and an item is ready, and sleeps until a call
ends, the cap's next start, a retry falling due or new items: no task per lane.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pusher_farm.core.epochs import HALT
from pusher_farm.core.load.model import Load
from pusher_farm.core.pacer import LAUNCHES_BEFORE_YIELD, LONGEST_SLEEP
from pusher_farm.core.schedule import Constant, Profile
from pusher_farm.core.shard import Shard
from pusher_farm.errors import InvalidOption, InvalidRPS

if TYPE_CHECKING:
    from pusher_farm.core.executor import Executor

__all__ = ["MAX_PARALLEL", "Drain"]

#: the most lanes a drain may have
MAX_PARALLEL = 100_000
#: items an agent holds per lane it runs
_ITEMS_PER_LANE = 4
#: out of items: look for new ones this often (a farm agent's come from its control thread)
_STARVED_POLL = 0.005


@dataclass(frozen=True)
class Drain(Load):
    """``profile`` lanes (a count over the run's clock: the whole farm's), each working through
    the feed's items one call at a time, at most ``cap`` calls per second in all (None: no cap)."""

    profile: Profile
    cap: float | None = None

    kind = "drain"
    knobs = ("parallel", "rps")
    needs_items = True

    def __post_init__(self) -> None:
        if not isinstance(self.profile, Profile):
            raise InvalidOption(f"a drain needs its lanes as a count or a profile, got {self.profile!r}")
        if self.profile.peak > MAX_PARALLEL:
            raise InvalidOption(f"parallel must be at most {MAX_PARALLEL:,}, got {self.profile.peak:g}")
        if self.cap is not None and (isinstance(self.cap, bool) or not 0 < self.cap < math.inf):
            raise InvalidRPS(f"a drain's rate cap must be a positive number, got {self.cap!r}")

    def describe(self) -> str:
        begins = self.begins
        lanes = self.profile.stages[1:] if begins else self.profile.stages
        flat = all(s.start == s.end == lanes[0].start for s in lanes)
        text = f"drain, {lanes[0].start:g} parallel" if flat else f"drain, parallel {self.profile.describe()}"
        if begins and flat:
            text = f"from {begins:g}s: {text}"
        return text + (f", at most {self.cap:g} rps" if self.cap is not None else "")

    def check(self, overtime: int, name: str) -> None:
        if self.profile.peak > overtime:
            raise InvalidOption(
                f"parallel {self.profile.peak:g} is more than overtime {overtime} (the most calls in flight per "
                "process): raise overtime or lower parallel"
            )

    @property
    def asks_rate(self) -> bool:
        return self.cap is not None

    def requested_until(self, t: float) -> float:
        if self.cap is None:
            return 0.0
        return self.cap * max(0.0, min(t, self.length()) - self.begins)

    def rate_at(self, t: float) -> float:
        return self.cap if self.cap is not None and self.members_at(t) > 0 else 0.0

    def _changed(self, at_s: float, changes: Mapping[str, float]) -> Load:
        cap = self.cap
        if "rps" in changes:
            cap = changes["rps"]
            if not 0 < cap < math.inf:
                raise InvalidRPS(f"a drain's rate cap must be above 0, got {cap:g}")
        profile = self.profile
        if "parallel" in changes:
            lanes = changes["parallel"]
            if lanes != int(lanes) or not 0 <= lanes <= MAX_PARALLEL:
                raise InvalidOption(f"parallel must be a whole number in 0..{MAX_PARALLEL:,}, got {lanes:g}")
            profile = profile.then(at_s, lanes)
        return Drain(profile, cap)

    def credit(self, share: float) -> int:
        return int(_ITEMS_PER_LANE * self.profile.peak * share)

    def with_rate(self, rps: float) -> Load:
        return Drain(self.profile, rps)

    def scaled(self, factor: float) -> Load:
        return Drain(self.profile.scaled(factor), None if self.cap is None else self.cap * factor)

    def cut(self, seconds: float | None) -> Load:
        return Drain(self.profile.cut(seconds), self.cap)

    def run(self, executor: Executor) -> Any:
        return _lanes(executor)

    def _wire(self) -> dict[str, Any]:
        return {} if self.cap is None else {"cap": self.cap}

    def _plain(self) -> dict[str, Any]:
        cap = None if self.cap is None else [[math.inf, self.cap, self.cap]]
        return {"profile": cap, "parallel": int(self.profile.peak)}

    @classmethod
    def _from_wire(cls, profile: Profile, data: Mapping[str, Any]) -> Load:
        cap = data.get("cap")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float))):
            raise InvalidOption("cap must be a number of calls per second")
        return cls(profile, None if cap is None else float(cap))

    @classmethod
    def lanes(cls, parallel: int, *, cap: float | None = None, duration: float | None = None) -> Drain:
        """``parallel`` lanes (the whole farm's) at most ``cap`` calls per second, for at most
        ``duration`` seconds (None: until every item is done)."""
        return cls(Constant(parallel, duration), cap)


async def _lanes(executor: Executor) -> None:
    """Keep this process's lanes busy, each on the next item, until the desk is dry (or the
    run is cut, stopped or its lease lapses); see the module docstring."""
    calls, desk, clock, plan, t0 = executor.calls, executor.items, executor.clock, executor.plan, executor.t0
    assert calls is not None and desk is not None
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    calls.on_free = wake.set
    next_due = t0 + executor.load.begins
    try:
        while True:
            now = clock()
            t = now - t0
            model = executor.load
            if now > executor.lease_until:
                return executor.expire_lease()
            if t >= model.length() or t >= plan.halt_s():
                return executor.mark_stopped()
            shard = plan.at_time(max(t, 0.0))
            members = model.members_at(t)
            if shard is False or shard is HALT:
                lanes, share = 0, 0.0
            elif isinstance(shard, Shard):
                lanes, share = shard.count(0, members), shard.share
            else:
                lanes, share = members, 1.0
            lanes = min(lanes, calls.overtime)
            cap = model.cap  # type: ignore[attr-defined]
            gap = 1.0 / (cap * share) if cap is not None and share > 0 else 0.0
            burst = 0
            while calls.in_flight < lanes and next_due <= now and desk.ready(now):
                calls.launch(executor.started, now, now)
                executor.started += 1
                if gap:  # the cap: one start per gap, never a burst to catch up
                    next_due = max(next_due, now - gap) + gap
                burst += 1
                if burst >= LAUNCHES_BEFORE_YIELD:
                    await asyncio.sleep(0)
                    burst = 0
                    now = clock()
            if desk.dry:
                return
            # Every lane busy: a call's end wakes us. A lane free: the cap's next start, a
            # retry falling due, or new items (which may come from another thread). No lane
            # (paused, or none of ours yet): the next look at the plan.
            wait = LONGEST_SLEEP
            if calls.in_flight < lanes:
                if next_due > now:
                    wait = min(wait, next_due - now)
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
