import asyncio

from pusher_farm.core.executor import Executor
from pusher_farm.core.schedule import Constant, Shard


def test_replan_switches_shard_at_the_epoch_and_never_fires_a_slot_twice():
    fired = []

    async def target(ctx):
        fired.append(ctx.seq)

    async def main():
        ex = Executor(target, Constant(200, 1.0), overtime=100, timeout=1.0, shard=Shard(0, (1.0, 1.0)))
        run = asyncio.create_task(ex.run())
        await asyncio.sleep(0.3)
        ex.replan(120, Shard(0, (1.0,)))  # from slot 120 on, this executor owns every slot
        await asyncio.sleep(0.05)
        ex.replan(60, Shard(1, (1.0, 1.0)))  # late and in the past: must not refire anything
        tally = await run
        return tally

    tally = asyncio.run(main())
    assert len(fired) == len(set(fired))
    assert [k for k in fired if k < 60] == list(range(0, 60, 2))
    # Between 60 and 120 the late epoch took over at one point: evens (old plan) before it,
    # odds (the late plan) after it, and nothing at or before that point fired again.
    middle = [k for k in fired if 60 <= k < 120]
    evens = [k for k in middle if k % 2 == 0]
    odds = [k for k in middle if k % 2 == 1]
    assert evens and odds and max(evens) < min(odds)
    assert odds == list(range(min(odds), 120, 2))
    assert [k for k in fired if k >= 120] == list(range(120, 200))
    assert tally.total.succeeded == len(fired)


def test_replan_to_a_sole_owner_fires_every_later_slot():
    fired = []

    async def target(ctx):
        fired.append(ctx.seq)

    async def main():
        ex = Executor(target, Constant(100, 1.0), overtime=100, timeout=1.0, shard=Shard(1, (1.0, 1.0)))
        run = asyncio.create_task(ex.run())
        await asyncio.sleep(0.2)
        ex.replan(50, Shard(0, (1.0,)))
        return await run

    asyncio.run(main())
    assert [k for k in fired if k < 50] == list(range(1, 50, 2))
    assert [k for k in fired if k >= 50] == list(range(50, 100))
