"""The executor's plan epochs, halts, lease and abort: driven by the calls themselves (an
inline target acts on the executor the moment its slot is launched), not by sleeps."""

import asyncio
import math
import threading
import time

from pusher_farm.core.calls import INTERRUPTED, inline
from pusher_farm.core.config import Config
from pusher_farm.core.epochs import Plan
from pusher_farm.core.executor import Executor
from pusher_farm.core.load import Open
from pusher_farm.core.schedule import Constant
from pusher_farm.core.shard import Shard


def config(rate, seconds, **kw):
    return Config(load=Open(Constant(rate, seconds)), timeout=1.0, overtime=100, **kw)


def executor(target, rate, seconds, shard=None):
    return Executor(target, config(rate, seconds), plan=Plan(shard))


def at_slot(ex, k):
    """The instant slot ``k`` of ``ex``'s constant rate is due."""
    return k / ex.load.profile.rate


def run(ex):
    return asyncio.run(ex.run())


def test_replan_switches_shard_at_the_epoch_and_never_fires_a_slot_twice():
    fired = []

    @inline
    def target(ctx):
        fired.append(ctx.seq)
        if ctx.seq == 100:
            ex.epoch(at_slot(ex, 120), Shard(0, (1.0,)), first=120)  # from slot 120 on: every slot
        if ctx.seq == 110:
            ex.epoch(at_slot(ex, 60), Shard(1, (1.0, 1.0)), first=60)  # late and in the past: no refire

    ex = executor(target, 400, 0.5, Shard(0, (1.0, 1.0)))
    tally = run(ex)
    assert len(fired) == len(set(fired))
    # Evens (the first plan) up to the late epoch's arrival at slot 110, then odds (the late
    # plan, announced last, supersedes the plan from 120 as it would on the coordinator's
    # books) from the next slot on: nothing before 111 fired again.
    assert fired == [*range(0, 111, 2), *range(111, 200, 2)]
    assert tally.total.succeeded == len(fired) and ex.reach == 200


def test_a_halt_is_final_even_before_a_later_epoch():
    fired = []

    @inline
    def target(ctx):
        fired.append(ctx.seq)
        if ctx.seq == 10:
            ex.stop_at(at_slot(ex, 30))
            ex.epoch(at_slot(ex, 50), Shard(0, (1.0,)), first=50)  # a plan from after the halt changes nothing

    ex = executor(target, 400, 0.5)
    run(ex)
    assert fired == list(range(30)) and ex.reach == 30


def test_a_plan_announced_while_a_shard_has_no_slot_left_is_still_followed():
    fired = []

    @inline
    def target(ctx):
        fired.append(ctx.seq)

    shard = Shard(0, (1.0, 99.0))  # one slot in a hundred: its only one in this run is `only`
    only = int(shard.cycle()[1][0])
    assert only < 90
    ex = executor(target, 200, 0.5, shard)

    async def main():
        task = asyncio.create_task(ex.run())
        while only not in fired:
            await asyncio.sleep(0.001)
        ex.epoch(at_slot(ex, only + 10), Shard(0, (1.0,)), first=only + 10)  # after its last own slot: the rest
        return await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert fired == [only, *range(only + 10, 100)]


def test_replan_to_a_sole_owner_fires_every_later_slot():
    fired = []

    @inline
    def target(ctx):
        fired.append(ctx.seq)
        if ctx.seq == 21:
            ex.epoch(at_slot(ex, 50), Shard(0, (1.0,)), first=50)

    ex = executor(target, 400, 0.25, Shard(1, (1.0, 1.0)))
    run(ex)
    assert fired == [*range(1, 50, 2), *range(50, 100)]


def test_stop_at_a_slot_halts_exactly_there_and_reaches_it():
    fired = []

    @inline
    def target(ctx):
        fired.append(ctx.seq)
        if ctx.seq == 11:
            ex.stop_at(at_slot(ex, 31))  # the instant slot 31 is due: every agent stops at that slot

    ex = executor(target, 400, 1.0, Shard(1, (1.0, 1.0)))
    run(ex)
    assert fired == list(range(1, 31, 2))
    assert ex.stopped_early and ex.reach == 31 and ex.stopped_s is not None


def test_a_lapsed_lease_stops_scheduling_on_its_own():
    fired = []

    @inline
    def target(ctx):
        fired.append(ctx.seq)
        if ctx.seq == 5:
            ex.lease_until = time.monotonic() + 0.05  # nobody renews it

    ex = executor(target, 100, 10.0)
    run(ex)
    assert ex.lease_expired and ex.stopped_early
    assert 6 <= len(fired) < 1000 and fired == list(range(len(fired)))
    assert ex.reach == len(fired)


def test_abort_counts_calls_in_flight_as_interrupted_without_waiting_for_them():
    release = threading.Event()
    started = threading.Event()

    def stuck(ctx):
        started.set()
        release.wait(30)

    async def main():
        ex = Executor(stuck, Config(load=Open(Constant(50, 10.0)), timeout=30.0, overtime=100))
        task = asyncio.create_task(ex.run())
        while not started.is_set():
            await asyncio.sleep(0.01)
        ex.abort()
        tally = await asyncio.wait_for(task, 5)  # not the 30 s timeout
        return ex, tally

    ex, tally = asyncio.run(main())
    release.set()
    total = tally.total
    assert ex.aborted and ex.stopped_early
    assert total.failed == total.started >= 1 and set(total.errors) == {INTERRUPTED}
    assert not math.isnan(ex.scheduled_end)
    # An aborted call ran from its start: its lag is the pacer's, not the time until the abort.
    assert total.lag.max < 100_000 and total.service.max >= 1_000
