"""A thread pool for plain-function targets whose threads never hold the process hostage.

``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter exit, so one
target stuck in ``time.sleep(1000)`` past its timeout keeps ``farm run`` from exiting after
the report is written. Here threads are daemons, started lazily up to ``max_workers``, and a
result that arrives after its event loop closed is dropped (its slot was already counted).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DaemonPool"]

_STOP = object()


class DaemonPool:
    def __init__(self, max_workers: int, name: str = "target") -> None:
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._pending = 0  # submitted and not yet finished
        self._closed = False

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """Run ``fn(arg)`` on a pool thread; the future completes on the running loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("pool is shut down")
            self._pending += 1
            spawn = self._pending > self._threads and self._threads < self.max_workers
            if spawn:
                self._threads += 1
        self._queue.put((loop, fut, fn, arg))
        if spawn:
            threading.Thread(target=self._work, name=f"{self.name}-{self._threads}", daemon=True).start()
        return fut

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            loop, fut, fn, arg = item
            try:
                result, error = fn(arg), None
            except BaseException as exc:  # handed to the loop, never lost in a thread
                result, error = None, exc
            with self._lock:
                self._pending -= 1
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:
                pass  # the loop is closed: the run ended and already counted this slot

    def shutdown(self) -> None:
        """Let idle threads end; busy ones end when their call returns. Never blocks."""
        with self._lock:
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._queue.put(_STOP)

    @property
    def threads(self) -> int:
        return self._threads


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
