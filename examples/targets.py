"""Example targets for `farm run examples.targets:NAME` (run from the repository root)."""

import asyncio
import random

from pusher_farm import Context, Retry, TargetError


async def checkout(ctx: Context) -> str:
    """Pretend to call a service: 2-4 ms, and one call in 50 fails with a kind of its own."""
    await asyncio.sleep(random.uniform(0.002, 0.004))
    if ctx.seq % 50 == 49:
        raise TargetError("out of stock", f"slot {ctx.seq}")
    return "ok"


def compute(ctx: Context) -> int:
    """A plain function: runs in the worker's thread pool."""
    return sum(range(1000))


def resize(ctx: Context) -> dict:
    """A work-item target (run it with --feed examples/images.jsonl): every fifth image is
    'busy' the first time and asks to be retried; every 50th is broken and fails."""
    item = ctx.item
    n = int(item.id)
    if n % 50 == 0:
        raise ValueError(f"{item.body['name']} is broken")
    if n % 5 == 0 and item.attempts == 1:
        raise Retry("busy")
    return {"resized": item.body["name"], "bytes": item.body["size"] // 2}
