"""The executor: fires one worker's slots on the event loop and counts every outcome once.

Wake, launch every slot that is due, sleep until the next one. Each wake-up also launches the
slots due within ``batch`` seconds of it (default 4 ms), up to that early: at a few thousand
slots per second, wake-ups are most of a generator's CPU, and this divides them by the slots
per batch. Those slots keep their intended time; their latency is counted from their actual
start (never below their service time) and their lag is 0. A slot that finds ``overtime``
calls in flight is canceled (counted, never queued). Coroutine targets run on the loop, plain
functions in a thread pool sized to overtime, and targets marked ``inline`` (cheap,
non-blocking functions such as the built-in ``noop``) are called right on the loop.

Every call is stamped in one place with its slot's intended time, its actual start and its
end; the three timings (latency = end - intended, service = end - start, lag = start -
intended) are recorded in batches into the current report window's histograms. Windows close
on the run's clock every ``window`` seconds; each closed window goes to ``on_window`` and into
the executor's ``Tally``.

Resource handling: ``run`` owns the pacer task, the flusher task, every call's task and the
thread pool; when it returns (or is cancelled) none of them is left running, except threads of
plain-function targets that ignored their timeout (they cannot be killed; their slot is already
counted as ``Timeout`` and their late result is discarded).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import numpy as np

from pusher_farm.core.config import DEFAULT_BATCH
from pusher_farm.core.gossip import Gossip, GossipHub, When
from pusher_farm.core.schedule import Profile, Shard, slot_batches
from pusher_farm.core.threads import DaemonPool
from pusher_farm.core.window import Tally, Window
from pusher_farm.errors import TargetError

__all__ = ["Context", "Executor", "TIMEOUT", "INTERRUPTED", "target_kind", "inline"]

#: error kind of a call that ran past its timeout
TIMEOUT = "Timeout"
#: error kind of a call still in flight when the run was aborted
INTERRUPTED = "Interrupted"

_FATAL = (KeyboardInterrupt, SystemExit)
_LAUNCHES_BEFORE_YIELD = 512
#: the event loop's timer resolution
_TIMER_TICK = 0.001
#: most slots one wake-up launches early: batching pays at a few thousand slots/s; at high rates
#: the timer tick already batches, and a large early burst would only fill overtime at once
_BATCH_MOST = 16
#: outcomes are folded into their windows this often (seconds)
_FOLD_PERIOD = 0.025
#: ... or this seldom when few outcomes come in (each fold is a wake-up: a cost at low rates)
_FOLD_PERIOD_IDLE = 0.1
#: outcomes per fold below which folding slows down to _FOLD_PERIOD_IDLE
_FOLD_FEW = 1000
#: calls past their timeout are failed this often (seconds): timeouts fire up to this late
_SWEEP_PERIOD = 0.01
#: ... at most, and at least a fiftieth of the timeout (a 30 s timeout is checked every 0.1 s)
_SWEEP_PERIOD_MAX = 0.1


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


class Context:
    """What a target gets for one call.

    ``seq`` is the slot's number; ``intended`` its due time, ``started`` the time the executor
    launched it and ``deadline`` the time the call times out (``None``: never), all on
    ``time.monotonic``'s clock; ``worker`` the worker's
    ident. ``cancelled`` becomes true once the call has timed out or the run was aborted: a
    plain function should check it (or ``remaining()``) in long loops; a coroutine is cancelled.
    """

    __slots__ = ("seq", "intended", "started", "deadline", "worker", "cancelled", "_done", "_task")

    def __init__(self, seq: int, intended: float, started: float, deadline: float | None, worker: str) -> None:
        self.seq = seq
        self.intended = intended
        self.started = started
        self.deadline = deadline
        self.worker = worker
        self.cancelled = False
        self._done = False
        self._task: Any = None  # what cancels the call: its task, future or handle

    def remaining(self) -> float | None:
        """Seconds left before the timeout, ``None`` without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def __repr__(self) -> str:
        return f"Context(seq={self.seq}, worker={self.worker!r})"


def _kind_of(exc: BaseException) -> str:
    if isinstance(exc, TargetError):
        return exc.kind
    return type(exc).__name__


class Executor:
    """One run of one target on the running event loop (see the module docstring)."""

    def __init__(
        self,
        target: Callable[[Context], Any],
        profile: Profile,
        *,
        ident: str = "",
        overtime: int,
        timeout: float | None,
        window: float = 1.0,
        until: float | None = None,
        shard: Shard | None = None,
        first_slot: int = 0,
        start_at: float | None = None,
        hub: GossipHub | None = None,
        on_window: Callable[[Window], None] | None = None,
        spin: float = 0.0,
        batch: float = DEFAULT_BATCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.kind = target_kind(target)
        self.profile = profile
        self.ident = ident
        self.overtime = overtime
        self.timeout = timeout
        self.window = window
        self.until = until
        self.first_slot = first_slot
        self.start_at = start_at
        self.hub = hub if hub else None
        self.on_window = on_window
        self.spin = spin
        self.batch = batch
        self.clock = clock
        self.tally = Tally(window)
        self.t0 = math.nan
        self.in_flight = 0
        self.scheduled_end = math.nan
        self.stopped_early = False
        self._pacer: asyncio.Task[None] | None = None
        # Calls in flight in launch order, which is also deadline order (one timeout for all):
        # the sweeper reads expired calls off the front, with no timer per call.
        self._inflight: dict[Context, Any] = {}  # a task, a future or a callback target's handle
        self._idle: asyncio.Event | None = None
        self._pool: DaemonPool | None = None
        self._epochs: list[tuple[int, Shard | None]] = [(first_slot, shard)]
        self._next_window = 0
        self._open: dict[int, Window] = {}
        # Buffers of outcomes not yet folded into a window (swapped out by the flusher).
        self._launches: list[float] = []
        self._ok: tuple[list[float], list[float], list[float]] = ([], [], [])
        self._ko: tuple[list[float], list[float], list[float], list[str]] = ([], [], [], [])
        self._cx: list[float] = []

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> Tally:
        loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        if self.kind == "sync" and self.overtime > 0:
            self._pool = DaemonPool(self.overtime, name=f"target:{self.ident}")
        self.t0 = self.start_at if self.start_at is not None else self.clock()
        flusher = loop.create_task(self._flush_every_window())
        sweeper = loop.create_task(self._sweep_timeouts()) if self.timeout is not None else None
        self._pacer = loop.create_task(self._pace())
        if self.stopped_early:  # stopped before it started
            self._pacer.cancel()
        try:
            try:
                await self._pacer
            except asyncio.CancelledError:
                if not self.stopped_early:
                    raise
            self.scheduled_end = self.clock()
            await self._drain()
        except BaseException:
            self._pacer.cancel()
            self._abort_in_flight()
            raise
        finally:
            flusher.cancel()
            if sweeper is not None:
                sweeper.cancel()
            self._flush(final=True)
            if self._pool is not None:
                self._pool.shutdown()
        return self.tally

    def stop(self) -> None:
        """Schedule no further slot; calls in flight finish (bounded by the timeout). Before
        ``run`` has started, the run will schedule nothing."""
        if self._pacer is None:
            self.stopped_early = True
        elif not self._pacer.done():
            self.stopped_early = True
            self._pacer.cancel()

    async def _drain(self) -> None:
        assert self._idle is not None
        if self.in_flight == 0:
            return
        self._idle.clear()
        grace = None if self.timeout is None else self.timeout + 1.0
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            self._abort_in_flight(TIMEOUT)

    def _abort_in_flight(self, kind: str = INTERRUPTED) -> None:
        """Count every call still in flight as failed with ``kind`` and cancel it."""
        for ctx, task in list(self._inflight.items()):
            if not ctx._done:
                now = self.clock()
                ctx.cancelled = True
                self._failed(ctx, now, now, kind)
            if task is not None:
                task.cancel()

    def replan(self, from_slot: int, shard: Shard | None) -> None:
        """From global slot ``from_slot`` on, fire the slots of ``shard`` (a new plan epoch,
        e.g. after the farm lost an agent). Call on the loop's thread. Slots this executor has
        already passed are never fired twice, even if the new epoch arrives late."""
        self._epochs.append((from_slot, shard))
        self._epochs.sort(key=lambda e: e[0])

    def _boundary(self, epoch: int) -> float:
        return self._epochs[epoch + 1][0] if epoch + 1 < len(self._epochs) else math.inf

    async def _pace(self) -> None:
        clock = self.clock
        t0 = self.t0
        launch = self._launch
        sleep = asyncio.sleep
        spin = self.spin
        ahead = 0.0 if spin else self.batch
        horizon = -math.inf
        early = 0  # slots this wake-up launched before their time
        burst = 0
        epoch = 0
        next_k = self.first_slot  # no slot below this is ever fired (again)
        while epoch < len(self._epochs):
            first, shard = self._epochs[epoch]
            boundary = self._boundary(epoch)
            switched = False
            for ks, ts in slot_batches(self.profile, until=self.until, shard=shard, first=max(first, next_k)):
                for k, t in zip(ks, ts, strict=True):
                    if k >= boundary:
                        switched = True
                        break
                    due = t0 + t
                    now = clock()
                    # Due within the batch this wake-up opened (and the batch not full): launch now.
                    if due > horizon or early >= _BATCH_MOST:
                        while now < due:
                            burst = 0
                            wait = due - now
                            if wait <= spin:
                                await sleep(0)  # busy-wait the last stretch: sub-millisecond arrivals
                            else:
                                # Event-loop timers tick in milliseconds (uvloop rounds shorter
                                # sleeps to 0, which would spin): sleep at least one tick, wake up
                                # to ~1 ms late.
                                await sleep(max(wait - spin, _TIMER_TICK))
                            now = clock()
                        horizon = now + ahead
                        early = 0
                    if due > now:
                        early += 1
                    if len(self._epochs) > epoch + 1 and k >= (boundary := self._boundary(epoch)):
                        switched = True  # a new plan arrived while we waited for this slot
                        break
                    launch(k, due, now)
                    next_k = k + 1
                    burst += 1
                    if burst >= _LAUNCHES_BEFORE_YIELD:
                        # Far behind schedule: let calls, I/O and the flusher run now and then.
                        burst = 0
                        await sleep(0)
                if switched:
                    break
            if not switched and epoch + 1 >= len(self._epochs):
                return  # the schedule is exhausted and no newer plan came
            epoch += 1

    def _launch(self, k: int, due: float, now: float) -> None:
        hub = self.hub
        if self.in_flight >= self.overtime:
            self._cx.append(now)
            if hub:
                hub.publish(Gossip(When.CANCELED, self.ident, k, due, ended=now))
            return
        self.in_flight += 1
        self._launches.append(now)
        timeout = self.timeout
        ctx = Context(k, due, now, None if timeout is None else now + timeout, self.ident)
        if hub:
            hub.publish(Gossip(When.BEFORE_TARGET, self.ident, k, due, started=now))
        kind = self.kind
        if kind == "inline":
            try:
                result = self.target(ctx)
            except _FATAL:
                self._failed(ctx, now, self.clock(), "Interrupted")
                self._release()
                raise
            except BaseException as exc:  # every failure is counted, none escapes
                self._failed(ctx, now, self.clock(), _kind_of(exc))
            else:
                self._succeeded(ctx, now, self.clock(), result)
            self._release()
            return
        if kind == "callback":
            inflight = self._inflight
            inflight[ctx] = None  # before the call: done() may come before start returns
            try:
                handle = self.target.__pusher_start__(ctx, self._callback_done)  # type: ignore[attr-defined]
            except _FATAL:
                inflight.pop(ctx, None)
                self._failed(ctx, now, self.clock(), INTERRUPTED)
                self._release()
                raise
            except BaseException as exc:
                inflight.pop(ctx, None)
                self._failed(ctx, now, self.clock(), _kind_of(exc))
                self._release()
                return
            if ctx in inflight:
                ctx._task = inflight[ctx] = handle
            return
        loop = asyncio.get_running_loop()
        if kind == "async":
            task: asyncio.Future[Any] = loop.create_task(self._call_async(ctx, now))
        else:
            assert self._pool is not None
            task = self._pool.submit(self._call_sync, ctx)
            task.add_done_callback(partial(self._sync_done, ctx))
        ctx._task = task
        self._inflight[ctx] = task

    def _callback_done(self, ctx: Context, result: Any, error: str | None) -> None:
        self._inflight.pop(ctx, None)
        if not ctx._done:  # else already counted (timed out, or the run was aborted)
            if error is None:
                self._succeeded(ctx, ctx.started, self.clock(), result)
            else:
                self._failed(ctx, ctx.started, self.clock(), error)
        self._release()

    def _release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def _sweep_timeouts(self) -> None:
        """Fail every call past its deadline (checked every 10-100 ms, a fiftieth of the timeout)."""
        clock = self.clock
        period = min(max(self.timeout / 50, _SWEEP_PERIOD), _SWEEP_PERIOD_MAX) if self.timeout else _SWEEP_PERIOD
        while True:
            await asyncio.sleep(period)
            now = clock()
            expired = []
            for ctx in self._inflight:
                if ctx.deadline is None or ctx.deadline > now:
                    break
                if not ctx._done:
                    expired.append(ctx)
            for ctx in expired:
                self._expire(ctx)

    def _expire(self, ctx: Context) -> None:
        ctx.cancelled = True
        now = self.clock()
        self._failed(ctx, ctx.started, now, TIMEOUT)
        if self.kind in ("async", "callback") and ctx._task is not None:
            ctx._task.cancel()

    async def _call_async(self, ctx: Context, start: float) -> None:
        try:
            result = await self.target(ctx)
        except asyncio.CancelledError:
            if not ctx._done:  # cancelled by someone else than our timeout: the run is ending
                self._failed(ctx, start, self.clock(), INTERRUPTED)
            task = asyncio.current_task()
            if task is not None and ctx.cancelled and task.cancelling():
                task.uncancel()
        except _FATAL:
            self._failed(ctx, start, self.clock(), INTERRUPTED)
            raise
        except BaseException as exc:
            self._failed(ctx, start, self.clock(), _kind_of(exc))
        else:
            self._succeeded(ctx, start, self.clock(), result)
        finally:
            self._inflight.pop(ctx, None)
            self._release()

    def _call_sync(self, ctx: Context) -> tuple[bool, Any, float, float]:
        start = self.clock()
        try:
            result = self.target(ctx)
        except BaseException as exc:
            return False, _kind_of(exc), start, self.clock()
        return True, result, start, self.clock()

    def _sync_done(self, ctx: Context, task: asyncio.Future[Any]) -> None:
        self._inflight.pop(ctx, None)
        if not task.cancelled():
            ok, value, start, end = task.result()
            if not ctx._done:
                if ok:
                    self._succeeded(ctx, start, end, value)
                else:
                    self._failed(ctx, start, end, value)
        elif not ctx._done:
            now = self.clock()
            self._failed(ctx, now, now, INTERRUPTED)
        self._release()

    # -- recording --------------------------------------------------------------------------

    def _succeeded(self, ctx: Context, start: float, end: float, result: Any) -> None:
        ctx._done = True
        ok = self._ok
        ok[0].append(ctx.intended)
        ok[1].append(start)
        ok[2].append(end)
        if self.hub:
            self.hub.publish(Gossip(When.AFTER_TARGET, self.ident, ctx.seq, ctx.intended, start, end, result=result))

    def _failed(self, ctx: Context, start: float, end: float, kind: str) -> None:
        ctx._done = True
        ko = self._ko
        ko[0].append(ctx.intended)
        ko[1].append(start)
        ko[2].append(end)
        ko[3].append(kind)
        if self.hub:
            self.hub.publish(Gossip(When.AFTER_TARGET, self.ident, ctx.seq, ctx.intended, start, end, error=kind))

    async def _flush_every_window(self) -> None:
        # Fold often when busy (small batches keep each pause short), seldom when not; emit at
        # window boundaries.
        busy = min(self.window, _FOLD_PERIOD)
        idle = min(self.window, _FOLD_PERIOD_IDLE)
        period = busy
        while True:
            await asyncio.sleep(period)
            folded = self._flush(final=False)
            period = busy if folded >= _FOLD_FEW * period / _FOLD_PERIOD_IDLE else idle

    def _flush(self, *, final: bool) -> int:
        """Fold buffered outcomes into their windows; emit every window whose end has passed
        (every window at all when ``final``). Returns how many stamps it folded."""
        launches, self._launches = self._launches, []
        ok, self._ok = self._ok, ([], [], [])
        ko, self._ko = self._ko, ([], [], [], [])
        cx, self._cx = self._cx, []
        late: dict[int, Window] = {}
        self._count(launches, "started", late)
        self._count(cx, "canceled", late)
        self._fold(ok, None, late)
        self._fold(ko[:3], ko[3], late)
        if final:
            last = max(self._open, default=self._next_window - 1)
        else:
            last = math.floor((self.clock() - self.t0) / self.window) - 1
        for i in range(self._next_window, last + 1):
            self._emit(self._open.pop(i, None) or Window(i, i * self.window, self.window))
        self._next_window = max(self._next_window, last + 1)
        for i in sorted(late):  # stamped in a window already emitted (a thread's late result)
            self._emit(late[i])
        return len(launches) + len(cx) + len(ok[0]) + len(ko[0])

    def _window(self, i: int, late: dict[int, Window]) -> Window:
        pool = late if i < self._next_window else self._open
        w = pool.get(i)
        if w is None:
            w = pool[i] = Window(i, i * self.window, self.window)
        return w

    def _index(self, times: list[float]) -> np.ndarray:
        return np.floor((np.asarray(times, dtype=np.float64) - self.t0) / self.window).astype(np.int64)

    def _count(self, times: list[float], field: str, late: dict[int, Window]) -> None:
        if not times:
            return
        for i, n in _per_window(self._index(times)):
            w = self._window(i, late)
            setattr(w, field, getattr(w, field) + n)

    def _fold(self, stamps: tuple[list[float], ...], kinds: list[str] | None, late: dict[int, Window]) -> None:
        if not stamps[0]:
            return
        intended = np.asarray(stamps[0], dtype=np.float64)
        start = np.asarray(stamps[1], dtype=np.float64)
        end = np.asarray(stamps[2], dtype=np.float64)
        index = self._index(stamps[2])
        # Latency from the intended start, or from the actual one for a slot launched early
        # with its batch: never below the service time.
        lat = np.rint((end - np.minimum(intended, start)) * 1e6).astype(np.int64)
        svc = np.rint((end - start) * 1e6).astype(np.int64)
        lag = np.rint((start - intended) * 1e6).astype(np.int64)
        first, last = int(index[0]), int(index[-1])
        if first == last:  # the usual case: the whole batch ended in one window
            groups: list[tuple[int, Any]] = [(first, slice(None))]
        else:
            groups = [(i, index == i) for i, _ in _per_window(index)]
        for i, mask in groups:
            w = self._window(i, late)
            w.latency.record_many(lat[mask])
            w.service.record_many(svc[mask])
            w.lag.record_many(lag[mask])
            if kinds is None:
                w.succeeded += len(lat[mask])
            else:
                picked = kinds if first == last else [kinds[j] for j in np.flatnonzero(mask).tolist()]
                w.failed += len(picked)
                w.errors.update(picked)

    def _emit(self, window: Window) -> None:
        self.tally.add(window)
        self.tally.close_before(window.index)
        if self.on_window is not None:
            self.on_window(window)


def _per_window(index: np.ndarray) -> list[tuple[int, int]]:
    """(window, count) for each window present in ``index`` (a bincount, not np.unique:
    np.unique imports numpy.ma on first use, a 17 ms stall in the middle of a run)."""
    low = int(index.min())
    counts = np.bincount(index - low)
    nz = np.flatnonzero(counts)
    return list(zip((nz + low).tolist(), counts[nz].tolist(), strict=True))


Target = Callable[[Context], Any] | Callable[[Context], Awaitable[Any]]
