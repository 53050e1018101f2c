"""Running a coroutine on the fastest event loop available (uvloop when installed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_name", "new_loop_factory", "run"]

T = TypeVar("T")


def new_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_name() -> str:
    return "uvloop" if new_loop_factory() is not asyncio.new_event_loop else "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed. Refuses to nest in a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError(
            "a blocking pusher-farm call was made inside a running event loop: "
            "await the async form instead (e.g. `await worker.work(...)`)"
        )
    with asyncio.Runner(loop_factory=new_loop_factory()) as runner:
        return runner.run(coro)
