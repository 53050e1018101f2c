"""Calls in flight: how each kind of target is called, and one way every outcome is counted.

Four kinds of target (``target_kind``): ``inline`` plain functions called right on the loop
(cheap, non-blocking ones such as the built-in ``noop``), ``callback`` targets that start a
call without a task and report it through ``done`` (the lean http engine), coroutines
(``async``) run as tasks on the loop, and plain functions (``sync``) run on a thread pool
sized to overtime. Whatever the kind, an outcome goes through ``_end`` once: a call that
already timed out or was aborted is not counted again when it returns.

Timeouts: calls sit in a dict in launch order, which is also deadline order (one timeout for
all), and ``sweep`` fails the expired ones from the front; a timer per call cost more than an
async no-op call itself.

Resource handling: ``Calls`` owns the thread pool (``close`` lets its threads go); threads of
plain functions that ignore their timeout cannot be killed: their slot is already counted as
``Timeout`` and their late result is dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from pusher_farm.core.gossip import Gossip, GossipHub, When
from pusher_farm.core.recorder import Recorder
from pusher_farm.core.threads import DaemonPool
from pusher_farm.errors import TargetError
from pusher_farm.items.desk import Desk

__all__ = ["INTERRUPTED", "TIMEOUT", "Calls", "Context", "Target", "inline", "kind_of", "target_kind"]

#: error kind of a call that ran past its timeout
TIMEOUT = "Timeout"
#: error kind of a call still in flight when the run was aborted
INTERRUPTED = "Interrupted"

_FATAL = (KeyboardInterrupt, SystemExit)


def inline(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a cheap, non-blocking plain function to be called right on the event loop."""
    fn.__pusher_inline__ = True  # type: ignore[attr-defined]
    return fn


def target_kind(target: Callable[..., Any]) -> str:
    """'inline', 'callback', 'async' or 'sync': how the executor will call ``target``.

    A *callback* target (the http target's lean engine) has ``__pusher_start__(ctx, done)``,
    which starts the call without blocking and returns a handle with ``cancel()``; it calls
    ``done(ctx, result, error_kind)`` exactly once, later, from the loop (``error_kind`` None:
    success). No task per call: the cheapest way to keep many calls in flight.
    """
    if getattr(target, "__pusher_inline__", False):
        return "inline"
    if callable(getattr(target, "__pusher_start__", None)):
        return "callback"
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - an object with an async __call__
    ):
        return "async"
    return "sync"


def kind_of(exc: BaseException) -> str:
    """The error kind a failure is counted under: a ``TargetError``'s kind, else the class name."""
    if isinstance(exc, TargetError):
        return exc.kind
    return type(exc).__name__


class Context:
    """What a target gets for one call.

    ``seq`` is the slot's number; ``intended`` its due time, ``started`` the time the executor
    launched it and ``deadline`` the time the call times out (``None``: never), all on
    ``time.monotonic``'s clock; ``worker`` the worker's ident. ``cancelled`` becomes true once
    the call has timed out or the run was aborted: a plain function should check it (or
    ``remaining()``) in long loops; a coroutine is cancelled. ``item`` is the work item of a
    run with a feed (``None`` otherwise). A target may tell how its call
    went: ``marks`` (when the request was sent and the first byte of the answer came; a
    callback target passes them to ``done`` instead) and ``phases`` (``(("connect", 0.002),)``):
    they are recorded into per-phase histograms, merged across a farm like latency.
    """

    __slots__ = (
        "seq", "intended", "started", "deadline", "worker", "cancelled", "marks", "phases", "item", "payload",
        "name", "_done", "_task", "_on_end",
    )  # fmt: skip

    def __init__(self, seq: int, intended: float, started: float, deadline: float | None, worker: str) -> None:
        self.seq = seq
        self.intended = intended
        self.started = started
        self.deadline = deadline
        self.worker = worker
        self.cancelled = False
        #: (request sent, first byte of the answer), on this clock, when the target tells:
        #: the report derives ``ttfb`` (first byte - sent) and ``receive`` (end - first byte)
        self.marks: tuple[float, float] | None = None
        #: other phases the target measured, as (name, seconds) pairs (the http target's
        #: ``wait``, ``connect``, ``tls``, where they happened)
        self.phases: tuple[tuple[str, float], ...] | None = None
        #: the work item this call works on (``pusher_farm.Work``) when the run has a feed
        self.item: Any = None
        #: what the target prepared for this call (the http target: its request's bytes)
        self.payload: Any = None
        #: the call's name in the report's rows by name (None: its scenario's); a target may
        #: set it (the http target: method and URL template, ``GET /users/{id}``)
        self.name: str | None = None
        self._done = False
        self._task: Any = None  # what cancels the call: its task, future or handle
        self._on_end: Callable[[], None] | None = None  # a closed model's user waits on it

    def remaining(self) -> float | None:
        """Seconds left before the timeout, ``None`` without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def __repr__(self) -> str:
        return f"Context(seq={self.seq}, worker={self.worker!r})"


class Calls:
    """The calls in flight of one run (see the module docstring)."""

    def __init__(
        self,
        target: Callable[[Context], Any],
        *,
        ident: str,
        overtime: int,
        timeout: float | None,
        recorder: Recorder,
        hub: GossipHub | None,
        clock: Callable[[], float],
        items: Desk | None = None,
    ) -> None:
        self.target = target
        #: where each call's work item comes from and where its outcome goes (a run with a feed)
        self.items = items
        #: called whenever a call ends (drain mode waits on it for a free lane)
        self.on_free: Callable[[], None] | None = None
        self.kind = target_kind(target)
        self.ident = ident
        self.overtime = overtime
        self.timeout = timeout
        self.recorder = recorder
        self.hub = hub if hub else None
        self.clock = clock
        self.in_flight = 0
        # The recorder's stamp buffers, appended to directly: this is once per call.
        self._ok = tuple(b.append for b in recorder.ok)
        self._ko = tuple(b.append for b in recorder.ko)
        self._marks = tuple(b.append for b in recorder.marks)
        self._phases = recorder.phases.append
        # Calls in flight in launch order, which is also deadline order (one timeout for all).
        self._inflight: dict[Context, Any] = {}  # a task, a future or a callback target's handle
        self._idle = asyncio.Event()
        self._aborted = False
        self._pool = DaemonPool(overtime, name=f"target:{ident}") if self.kind == "sync" and overtime else None

    def set_overtime(self, limit: int) -> None:
        """A new cap on calls in flight (a farm's runtime change); calls beyond a lowered cap
        finish, new slots are canceled until fewer are in flight."""
        self.overtime = limit
        if self._pool is not None:
            self._pool.max_workers = max(self._pool.max_workers, limit)
        elif self.kind == "sync" and limit:
            self._pool = DaemonPool(limit, name=f"target:{self.ident}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    # -- launching ------------------------------------------------------------------------------

    def launch(self, k: int, due: float, now: float, on_end: Callable[[], None] | None = None) -> bool:
        """Start slot ``k`` (due at ``due``) at ``now``, or cancel it when overtime is full (or
        no work item is there for it): False. ``on_end`` is called once the call is over."""
        hub = self.hub
        if self.in_flight >= self.overtime:
            self._cancel(k, due, now)
            return False
        item = None
        if self.items is not None:
            item = self.items.take(now)
            if item is None:  # no work item to give this slot (the desk counts it starved)
                self._cancel(k, due, now)
                return False
        self.in_flight += 1
        self.recorder.launches.append(now)
        timeout = self.timeout
        ctx = Context(k, due, now, None if timeout is None else now + timeout, self.ident)
        if item is not None:
            ctx.item = item
        if on_end is not None:
            ctx._on_end = on_end
        if hub:
            hub.publish(Gossip(When.BEFORE_TARGET, self.ident, k, due, started=now))
        kind = self.kind
        if kind == "inline" or kind == "callback":
            try:
                if kind == "inline":
                    result = self.target(ctx)
                else:
                    self._inflight[ctx] = None  # before the call: done() may come before start returns
                    handle = self.target.__pusher_start__(ctx, self._callback_done)  # type: ignore[attr-defined]
                    if ctx in self._inflight:
                        ctx._task = self._inflight[ctx] = handle
                    return True
            except _FATAL:
                self._end(ctx, now, self.clock(), INTERRUPTED)
                self._release(ctx)
                raise
            except BaseException as exc:  # every failure is counted, none escapes
                self._end(ctx, now, self.clock(), kind_of(exc))
            else:
                self._end(ctx, now, self.clock(), None, result)
            self._release(ctx)
            return True
        if kind == "async":
            task: asyncio.Future[Any] = asyncio.get_running_loop().create_task(self._call_async(ctx, now))
        else:
            assert self._pool is not None
            task = self._pool.submit(self._call_sync, ctx)
            task.add_done_callback(partial(self._sync_done, ctx))
        ctx._task = self._inflight[ctx] = task
        return True

    def _cancel(self, k: int, due: float, now: float) -> None:
        self.recorder.canceled.append(now)
        if self.hub:
            self.hub.publish(Gossip(When.CANCELED, self.ident, k, due, ended=now))

    def _callback_done(
        self, ctx: Context, result: Any, error: str | None, sent: float = 0.0, first: float = 0.0
    ) -> None:
        end = self.clock()
        if not ctx._done:
            self._end(ctx, ctx.started, end, error, result)
            if first:  # the target said when it sent the request and when the answer began
                marks = self._marks  # inline: this is once per call of the http target
                marks[0](sent or ctx.started)
                marks[1](first)
                marks[2](end)
                if ctx.phases is not None:
                    self._phases((end, ctx.phases))
        self._release(ctx)

    async def _call_async(self, ctx: Context, start: float) -> None:
        try:
            result = await self.target(ctx)
        except asyncio.CancelledError:
            self._end(ctx, start, self.clock(), INTERRUPTED)  # not our timeout: the run is ending
            task = asyncio.current_task()
            if task is not None and ctx.cancelled and task.cancelling():
                task.uncancel()
        except _FATAL:
            self._end(ctx, start, self.clock(), INTERRUPTED)
            raise
        except BaseException as exc:
            self._ended(ctx, start, kind_of(exc), None)
        else:
            self._ended(ctx, start, None, result)
        finally:
            self._release(ctx)

    def _ended(self, ctx: Context, start: float, error: str | None, result: Any) -> None:
        """A coroutine's call ended: count it (once) with the marks it left on its context."""
        if ctx._done:
            return  # timed out before: already counted
        end = self.clock()
        self._end(ctx, start, end, error, result)
        if ctx.marks is not None:
            self._mark(ctx, *ctx.marks, end)

    def _call_sync(self, ctx: Context) -> tuple[str | None, Any, float, float]:
        start = self.clock()
        try:
            result = self.target(ctx)
        except BaseException as exc:
            return kind_of(exc), None, start, self.clock()
        return None, result, start, self.clock()

    def _sync_done(self, ctx: Context, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            self._end(ctx, ctx.started, self.clock(), INTERRUPTED)
        else:
            error, result, start, end = task.result()
            self._end(ctx, start, end, error, result)
        self._release(ctx)

    # -- ending -----------------------------------------------------------------------------

    def _end(self, ctx: Context, start: float, end: float, error: str | None, result: Any = None) -> None:
        """Count ``ctx``'s outcome, once: a call that timed out or was aborted is already in."""
        if ctx._done:
            return
        ctx._done = True
        if ctx.item is not None and self.items is not None:
            error = self.items.settle(ctx.item, error, result, end - ctx.intended, end)
        if error is None:
            intended, started, ended, name = self._ok
        else:
            intended, started, ended, kind, name = self._ko
            kind(error)
        name(ctx.name)
        intended(ctx.intended)
        started(start)
        ended(end)
        if self.hub:
            gossip = Gossip(When.AFTER_TARGET, self.ident, ctx.seq, ctx.intended, start, end, result, error)
            self.hub.publish(gossip)

    def _mark(self, ctx: Context, sent: float, first: float, end: float) -> None:
        """The call's request went at ``sent`` and its answer began at ``first``: for the
        ttfb and receive phases (and any other phases the target measured)."""
        if not first:
            return
        marks = self._marks
        marks[0](sent)
        marks[1](first)
        marks[2](end)
        if ctx.phases is not None:
            self._phases((end, ctx.phases))

    def _release(self, ctx: Context) -> None:
        self._inflight.pop(ctx, None)
        self.in_flight -= 1
        if ctx._on_end is not None:
            ctx._on_end()
        if self.in_flight == 0:
            self._idle.set()
        if self.on_free is not None:
            self.on_free()

    def sweep(self) -> None:
        """Fail every call past its deadline as ``Timeout`` (and cancel what can be)."""
        now = self.clock()
        expired = []
        for ctx in self._inflight:
            if ctx.deadline is None or ctx.deadline > now:
                break
            if not ctx._done:
                expired.append(ctx)
        for ctx in expired:
            ctx.cancelled = True
            self._end(ctx, ctx.started, now, TIMEOUT)
            if self.kind in ("async", "callback") and ctx._task is not None:
                ctx._task.cancel()

    def abort(self, kind: str = INTERRUPTED) -> None:
        """Count every call still in flight as failed with ``kind``, cancel it, and stop
        waiting for any (``drain`` returns at once)."""
        for ctx, task in list(self._inflight.items()):
            if not ctx._done:
                ctx.cancelled = True
                self._end(ctx, ctx.started, self.clock(), kind)  # it ran from its start until now
            if task is not None:
                task.cancel()
        self._aborted = True
        self._idle.set()

    async def drain(self, grace: float | None) -> None:
        """Wait for the calls in flight, ``grace`` seconds at most; then abort the rest as
        ``Timeout``."""
        if self.in_flight == 0 or self._aborted:
            return
        self._idle.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            self.abort(TIMEOUT)


Target = Callable[[Context], Any] | Callable[[Context], Awaitable[Any]]
