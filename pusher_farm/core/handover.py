"""Plans for one executor from any thread: applied on its loop's thread, none lost.

A farm agent's control thread hears epochs, changes, stops and lease renewals while the
executor runs on the main thread's event loop, and may hear them before that executor even
exists (a plan arrives in the start lead). ``Handover.do`` runs an action on the executor's
loop (at once when called there), or keeps it, in order, for the executor to take as it starts
(``attach``). The lease is a number the pacer reads: it is set directly, from any thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pusher_farm.core.executor import Executor

__all__ = ["Handover"]

Action = Callable[["Executor"], None]


class Handover:
    """See the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Action] = []
        self._executor: Executor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lease = math.inf
        #: the executor has come and gone: later actions have nothing to act on
        self.closed = False

    def do(self, action: Action) -> None:
        """Run ``action`` on the executor, on its loop's thread; kept for it until it starts."""
        with self._lock:
            if self.closed:
                return
            executor, loop = self._executor, self._loop
            if executor is None or loop is None:
                self._pending.append(action)
                return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action(executor)
            return
        try:
            loop.call_soon_threadsafe(action, executor)
        except RuntimeError:
            pass  # the loop closed: the run is over

    def lease(self, until: float) -> None:
        """The executor may schedule until ``until`` on its clock and no longer (any thread)."""
        self._lease = until
        executor = self._executor
        if executor is not None:
            executor.lease_until = until

    def attach(self, executor: Executor) -> None:
        """``executor`` runs on the current loop from now on: it takes what was kept for it."""
        with self._lock:
            for action in self._pending:
                action(executor)
            self._pending.clear()
            executor.lease_until = self._lease
            self._executor, self._loop = executor, asyncio.get_running_loop()

    def detach(self) -> None:
        """The executor's run is over: nothing more is handed to it."""
        with self._lock:
            self._executor = self._loop = None
            self._pending.clear()
            self.closed = True
