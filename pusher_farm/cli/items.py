"""The work-item options of ``farm run`` and ``farm coordinator``: feeds, drain mode, retries,
results and failure handlers. They become fields of the run's ``Config``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pusher_farm.cli.common import fail

__all__ = ["item_options", "item_settings"]


def item_options() -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    return [
        click.option(
            "--feed",
            metavar="FILE",
            help="Work items: a .jsonl or .csv file, or - for JSON lines on stdin. Each call takes the next "
            "item; the run ends when the feed runs dry (unless --feed-cycle).",
        ),
        click.option("--feed-cycle", is_flag=True, help="Start the feed over when it runs dry (rate mode)."),
        click.option(
            "--drain",
            is_flag=True,
            help="Drain mode: process every item of --feed once, --parallel calls per process at a time, "
            "as fast as they go (--rps caps the total rate); the run ends when every item is done.",
        ),
        click.option("--parallel", type=int, help="Calls kept going per process in drain mode (default 10)."),
        click.option(
            "--max-retries",
            default="0",
            show_default=True,
            help="Times an item whose call asks to retry (Status.RETRY, raise Retry) is tried again.",
        ),
        click.option("--retry-delay", default="0", show_default=True, help="Wait before a retry, e.g. 100ms."),
        click.option("--results", metavar="FILE", help="Append one JSON line per finished item here."),
        click.option("--dead-letter", metavar="FILE", help="Append each failed item here as a JSON line."),
        click.option(
            "--failure-handler",
            "failure_handlers",
            multiple=True,
            metavar="MODULE:FUNCTION",
            help="A function called with each failed item's record, on the coordinator's host (repeatable).",
        ),
    ]


def item_settings(opts: dict[str, Any]) -> dict[str, Any]:
    """The ``Config`` fields the item options set (checked by ``Config`` itself)."""
    feed = opts["feed"]
    drain = opts["drain"]
    if feed is None:
        for flag, name in ((drain, "--drain"), (opts["feed_cycle"], "--feed-cycle"), (opts["results"], "--results"),
                           (opts["dead_letter"], "--dead-letter"), (opts["failure_handlers"], "--failure-handler"),
                           (opts["parallel"] is not None, "--parallel")):  # fmt: skip
            if flag:
                fail(f"{name} works on items: give them with --feed FILE")
        if opts["max_retries"] not in ("0", 0):
            fail("--max-retries works on items: give them with --feed FILE")
        return {}
    if opts["parallel"] is not None and not drain:
        fail("--parallel is for drain mode: add --drain (rate mode caps calls in flight with --overtime)")
    if drain and opts["feed_cycle"]:
        fail("--drain processes the feed once: drop --feed-cycle")
    parallel = (opts["parallel"] if opts["parallel"] is not None else 10) if drain else 0
    if drain and parallel < 1:
        fail(f"--parallel must be at least 1, got {parallel}")
    return {
        "feed": feed,
        "feed_cycle": opts["feed_cycle"],
        "parallel": parallel,
        "max_retries": opts["max_retries"],
        "retry_delay": opts["retry_delay"],
        "results": opts["results"],
        "dead_letter": opts["dead_letter"],
        "failure_handlers": tuple(opts["failure_handlers"]),
    }
