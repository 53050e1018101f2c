"""The open model: calls on an absolute schedule of global slots, whatever the target does.

k6's constant- and ramping-arrival-rate, wrk2's and vegeta's model. Slot ``k`` is due when the
rate profile's integral reaches ``k`` (``schedule``); a farm deals the slots among its agents by
weight (``Shard``), so the farm's arrivals interleave evenly and the counts add up exactly. A
slot that finds every allowed call in flight is canceled (counted, never queued), so a slow
target shows as latency from the intended start (coordinated omission corrected) and as
canceled slots, never as a lower rate.

The pacer wakes, launches every slot that is due (and those due within the batch: ``pacer``),
sleeps until the next. It follows the executor's plan: at each epoch it switches shard at the
epoch's slot (a slot already passed is never fired again, even when the epoch arrives late), a
halt ends it at its slot, and a new profile (a runtime change) is taken up from where it is.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pusher_farm.core.epochs import HALT
from pusher_farm.core.load.model import Load, profile_wire
from pusher_farm.core.pacer import LAUNCHES_BEFORE_YIELD, LONGEST_SLEEP, Pacer
from pusher_farm.core.schedule import Constant, Profile, Stages, slot_batches
from pusher_farm.errors import InvalidOption, InvalidRPS

if TYPE_CHECKING:
    from pusher_farm.core.epochs import Plan
    from pusher_farm.core.executor import Executor

__all__ = ["AHEAD_S", "Open"]

#: seconds of items an agent holds ahead at its share of the peak rate
AHEAD_S = 0.5
#: the highest rate a runtime change may ask for (calls per second, the whole farm)
MOST_RPS = 1e8


@dataclass(frozen=True)
class Open(Load):
    """Calls at the rate of ``profile`` (calls per second over the run's clock)."""

    profile: Profile

    kind = "open"
    knobs = ("rps",)
    slotted = True
    closed_loop = False

    def __post_init__(self) -> None:
        if not isinstance(self.profile, Profile):
            raise InvalidOption(f"an open model needs a rate profile (Constant or Stages), got {self.profile!r}")

    def describe(self) -> str:
        begins = self.begins
        if not begins:
            return self.profile.describe()
        after = self.profile.stages[1:]
        if len(after) == 1 and after[0].start == after[0].end:
            return f"from {begins:g}s: {after[0].start:g} rps"
        return f"from {begins:g}s: {Stages(after).describe()}"

    @property
    def asks_rate(self) -> bool:
        return True

    def requested_until(self, t: float) -> float:
        return self.profile.slots_until(t)

    def rate_at(self, t: float) -> float:
        return self.profile.rate_at(t)

    def epoch_slot(self, at_s: float, after: int = 0) -> int:
        return max(self.profile.first_slot_at(at_s), after)

    def planned(self, plan: Plan, reach: int | None, started: int, stopped_early: bool) -> int:
        """The slots of the plan's shards from its first slot up to where its schedule ended
        (the profile's end, or how far it got when it stopped early)."""
        end = plan.first if reach is None else reach
        if not stopped_early and math.isfinite(self.length()):
            end = max(end, self.profile.slot_count())
        return plan.owned(plan.first, end)

    def planned_end(self, *, cut: bool, reaches: list[int], stop_s: float | None) -> int:
        """The whole profile; or, for a run the coordinator cut short, as far as its agents got
        (each reports the first slot it did not pass: told to stop at one instant, they all
        stop at its slot), else the slot due at the stop (``stop_s``) when no agent said."""
        full = None if math.isinf(self.length()) else self.profile.slot_count()
        if not cut and full is not None:
            return full
        if reaches:
            end = max(reaches)
        elif stop_s is not None:
            end = self.profile.first_slot_at(max(stop_s, 0.0))
        else:
            end = full if full is not None else 0
        return end if full is None else min(end, full)

    def _changed(self, at_s: float, changes: Mapping[str, float]) -> Load:
        rps = changes["rps"]
        if not 0 < rps <= MOST_RPS:
            raise InvalidRPS(f"must be above 0 and at most {MOST_RPS:g}, got {rps:g}")
        return Open(self.profile.then(at_s, rps))

    def credit(self, share: float) -> int:
        return int(self.profile.peak * share * AHEAD_S)

    def scaled(self, factor: float) -> Load:
        return Open(self.profile.scaled(factor))

    def cut(self, seconds: float | None) -> Load:
        return Open(self.profile.cut(seconds))

    def run(self, executor: Executor) -> Any:
        return _pace(executor)

    def _plain(self) -> dict[str, Any]:
        return {"profile": profile_wire(self.profile)}

    @classmethod
    def _from_wire(cls, profile: Profile, data: Mapping[str, Any]) -> Load:
        return cls(profile)

    @classmethod
    def rate(cls, rps: float, duration: float | None = None) -> Open:
        """A constant ``rps`` for ``duration`` seconds (None: until stopped)."""
        return cls(Constant(rps, duration))


async def _pace(executor: Executor) -> None:
    """Launch the plan's slots on time (see the module docstring)."""
    clock = executor.clock
    t0 = executor.t0
    calls = executor.calls
    assert calls is not None
    launch = calls.launch
    sleep = asyncio.sleep
    plan = executor.plan
    pacer = Pacer(batch=executor.config.batch, spin=executor.config.spin)
    burst = 0
    next_k = plan.first  # no slot below this is ever fired (again)
    reached: int | None = None
    try:
        while True:
            shard, boundary = plan.at_slot(next_k)
            if shard is HALT:
                halt = plan.halt_slot()
                assert halt is not None
                reached = halt if reached is None else max(reached, halt)
                return executor.mark_stopped()
            version = executor.version
            profile = executor.load.profile
            replanned = False
            for ks, ts in slot_batches(profile, shard=shard, first=next_k):  # type: ignore[arg-type]
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
                        while wait is not None and executor.version == version:
                            await sleep(min(wait, LONGEST_SLEEP))
                            now = clock()
                            if now > executor.lease_until:
                                return executor.expire_lease()
                            wait = pacer.wait(due, now)
                    if executor.version != version:
                        replanned = True  # a new plan arrived while we waited for this slot
                        break
                    launch(k, due, now)
                    next_k = reached = k + 1
                    burst += 1
                    if burst >= LAUNCHES_BEFORE_YIELD:
                        # Far behind schedule: let calls, I/O and folding run now and then.
                        burst = 0
                        await sleep(0)
                        if clock() > executor.lease_until:
                            return executor.expire_lease()
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
            end = t0 + profile.duration
            while executor.version == version and clock() < end:
                await sleep(max(0.0, min(end - clock(), LONGEST_SLEEP)))
                if clock() > executor.lease_until:
                    return executor.expire_lease()
            if executor.version == version:
                return  # the schedule is exhausted and no newer plan came
    finally:
        executor.reach = reached
