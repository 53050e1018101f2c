"""The simplest targets: ``noop`` (measures the generator itself) and ``sleep``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pusher_farm.targets import Param, Plugin

if TYPE_CHECKING:  # targets sit below the core: they import none of it at run time
    from pusher_farm.core.executor import Context


def noop(ctx: Context) -> None:
    """Does nothing, right on the event loop: the generator's own cost per slot."""
    return None


# What pusher_farm.inline sets: call this cheap, non-blocking function right on the loop.
noop.__pusher_inline__ = True  # type: ignore[attr-defined]


def _make_noop() -> Any:
    return noop


def _make_sleep(ms: float) -> Any:
    if not ms >= 0:
        raise ValueError("ms must be >= 0")
    seconds = ms / 1000

    async def sleep(ctx: Context) -> None:
        await asyncio.sleep(seconds)

    return sleep


NOOP = Plugin("noop", _make_noop, help="does nothing (measures the generator)")
SLEEP = Plugin(
    "sleep",
    _make_sleep,
    {"ms": Param(float, 10.0, "milliseconds each call sleeps")},
    help="an async sleep of --param ms=N milliseconds",
)
