"""A pusher-farm plugin package for the tests."""

import os


def echo(ctx):
    """Succeeds with the item's id and this process's pid; items with a 'fail' field fail."""
    if ctx.item is not None and isinstance(ctx.item.body, dict) and ctx.item.body.get("fail"):
        raise ValueError("asked to fail")
    return {"id": None if ctx.item is None else ctx.item.id, "pid": os.getpid()}


def count_feed(argument):
    """A feed of ``argument`` items: {"id": i, "fail": i % 10 == 0}."""
    return [{"id": i, "fail": i % 10 == 0} for i in range(int(argument))]


def record_failure(record):
    with open(os.environ["FARM_PLUGIN_FAILED"], "a") as f:
        f.write(f"{record['id']}\n")
