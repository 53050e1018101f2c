"""Targets for the work-item tests, importable by agent processes (``tests.items.item_targets:...``)."""

import os
import time

import pusher_farm as pf


def retry_twice_every_third(ctx):
    """Every third item asks to be retried twice, then succeeds; the rest succeed at once."""
    item = ctx.item
    if int(item.id) % 3 == 0 and item.attempts <= 2:
        raise pf.Retry("busy")
    return {"done": item.id, "pid": os.getpid()}


def slow(ctx):
    """Takes 5 ms per item (so a drain lasts long enough to lose an agent in it)."""
    time.sleep(0.005)
    return ctx.item.id


def echo(ctx):
    return ctx.item.id


def record_failure(record):
    """A failure handler: appends the failed item's id to the file named by FARM_TEST_FAILED."""
    with open(os.environ["FARM_TEST_FAILED"], "a") as f:
        f.write(f"{record['id']}\n")
