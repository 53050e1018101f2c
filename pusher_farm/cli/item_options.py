"""The work-item options of ``farm run`` and ``farm coordinator``: feeds, drain mode, retries,
results and failure handlers. They are keys of the run's scenario (``core.scenario`` checks
them and their rules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pusher_farm.core.scenario import DEFAULT_PARALLEL

__all__ = ["item_options"]


def item_options() -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    return [
        click.option(
            "--feed",
            metavar="FEED",
            help="Work items: a .jsonl or .csv file, - for JSON lines on stdin, redis://HOST:PORT/DB?list=NAME, or a "
            "plugin's NAME:ARG. Each call takes the next item; the run ends when the feed runs dry (unless "
            "--feed-cycle).",
        ),
        click.option("--feed-cycle", is_flag=True, help="Start the feed over when it runs dry (rate mode)."),
        click.option(
            "--drain",
            is_flag=True,
            help="Drain mode: process every item of --feed once, --parallel calls at a time in all (split among the "
            "agents), as fast as they go (--rps caps the total rate); the run ends when every item is done.",
        ),
        click.option(
            "--parallel",
            help=f"Calls kept going in drain mode, the whole farm's (default {DEFAULT_PARALLEL}); "
            "PATCH /farm or /herd changes it at runtime.",
        ),
        click.option(
            "--max-retries",
            show_default="0",
            help="Times an item whose call asks to retry (Status.RETRY, raise Retry) is tried again.",
        ),
        click.option("--retry-delay", show_default="0", help="Wait before a retry, e.g. 100ms."),
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
