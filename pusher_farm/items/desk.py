"""One process's work items: the item each call works on, and what its outcome makes of it.

``take`` gives a starting call its item: a retry whose time has come first, else the next item
from the ``Supply`` (a feed read here, or the items a farm's coordinator handed this agent).
``settle`` reads the call's outcome: a value is a success (the item's result), ``Status.RETRY``
or ``Retry`` puts the item back to be taken again ``retry_delay`` later, unless it has had its
``max_retries`` (then it fails with the last reason); ``Status.FAILURE`` or any other error
fails it. A finished item goes to ``on_final``, a retry to ``on_retry``.

The desk lives on the event loop's thread (``take`` and ``settle`` are called there, once per
call); only a ``BufferSupply`` is filled from another thread (a deque: appends and pops are
atomic). The run is *dry* when the supply is exhausted and no item is waiting to be retried or
in flight: ``on_dry`` is called once.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any

from pusher_farm.items.item import FAILURE_KIND, RETRY_KIND, Status, Work, is_retry

#: the error kind of a call the run's abort cut short (``core.calls.INTERRUPTED``)
INTERRUPTED = "Interrupted"

__all__ = ["BufferSupply", "Desk", "FeedSupply", "Supply"]


class Supply:
    """Where new items come from: ``take`` one (None: none now); ``exhausted`` once no more
    will ever come."""

    exhausted = False

    def take(self) -> Work | None:
        raise NotImplementedError

    def has_next(self) -> bool:
        """Whether ``take`` would give an item now."""
        raise NotImplementedError


class FeedSupply(Supply):
    """Items read from an iterator of a feed, in this process (one read ahead, so that
    ``has_next`` and ``exhausted`` are known before a call asks)."""

    def __init__(self, items: Iterator[Work]) -> None:
        self._items = items
        self._next: Work | None = None
        self._read()

    def _read(self) -> None:
        self._next = next(self._items, None)
        if self._next is None:
            self.exhausted = True

    def take(self) -> Work | None:
        item = self._next
        if item is not None:
            self._read()
        return item

    def has_next(self) -> bool:
        return self._next is not None


class BufferSupply(Supply):
    """Items handed over from elsewhere (a farm agent's coordinator): ``put`` from any thread.
    Never exhausted: the coordinator, which holds the feed, decides when the run ends."""

    def __init__(self) -> None:
        self._buffer: deque[Work] = deque()

    def put(self, items: list[Work]) -> None:
        self._buffer.extend(items)

    def __len__(self) -> int:
        return len(self._buffer)

    def has_next(self) -> bool:
        return bool(self._buffer)

    def take(self) -> Work | None:
        try:
            return self._buffer.popleft()
        except IndexError:
            return None


class Desk:
    """See the module docstring."""

    def __init__(
        self,
        supply: Supply,
        *,
        max_retries: int = 0,
        retry_delay: float = 0.0,
        on_final: Callable[[Work, float], None] | None = None,
        on_retry: Callable[[Work], None] | None = None,
        on_dry: Callable[[], None] | None = None,
    ) -> None:
        self.supply = supply
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.on_final = on_final
        self.on_retry = on_retry
        self.on_dry = on_dry
        self.in_flight = 0
        #: slots that found no item (counted canceled)
        self.starved = 0
        self.taken = 0
        self.by_status: Counter[str] = Counter()
        #: finished items by the attempts they took
        self.attempts: Counter[int] = Counter()
        self.retries = 0
        self.retry_reasons: Counter[str] = Counter()
        #: items whose call the run's abort cut short: left unfinished
        self.interrupted = 0
        self.dry = False
        #: failures passing items on (a bug in a handler): counted, the first one kept
        self.hand_errors = 0
        self.first_hand_error = ""
        self._waiting: list[tuple[float, int, Work]] = []  # (due, order, item): retries
        self._order = itertools.count()

    def take(self, now: float) -> Work | None:
        """The item for a call starting ``now``, or None (counted as starved)."""
        waiting = self._waiting
        if waiting and waiting[0][0] <= now:
            item = heapq.heappop(waiting)[2]
        else:
            item = self.supply.take()
            if item is None:
                self.starved += 1
                self._check_dry()
                return None
            self.taken += 1
        item.attempts += 1
        self.in_flight += 1
        return item

    def ready(self, now: float) -> bool:
        """Whether ``take`` would find an item now (drain mode asks before it starts a call)."""
        if self._waiting and self._waiting[0][0] <= now:
            return True
        return self.supply.has_next()

    def next_retry(self) -> float | None:
        """When the earliest waiting retry falls due (None: none waits)."""
        return self._waiting[0][0] if self._waiting else None

    def settle(self, item: Work, error: str | None, result: Any, latency: float, now: float) -> str | None:
        """The call on ``item`` ended with ``error`` (a kind; None: it returned ``result``):
        the kind to count the call under (None: a success)."""
        self.in_flight -= 1
        if error is None:
            if result is Status.RETRY:
                error = RETRY_KIND
            elif result is Status.FAILURE:
                error = FAILURE_KIND
            else:
                item.status = Status.SUCCESS
                item.result = None if result is Status.SUCCESS else result
                self._finish(item, latency)
                return None
        if error == INTERRUPTED:
            # The run was aborted under it: not done, not failed by its target. It is left
            # unfinished (a farm's coordinator counts it unprocessed; a Redis list keeps it).
            self.interrupted += 1
            self._check_dry()
            return error
        if is_retry(error):
            item.retries.append(error)
            self.retries += 1
            reasons = self.retry_reasons
            reasons[error if error in reasons or len(reasons) < 100 else "other reasons"] += 1
            if item.attempts <= self.max_retries:
                heapq.heappush(self._waiting, (now + self.retry_delay, next(self._order), item))
                if self.on_retry is not None:
                    self._hand(self.on_retry, item)
                return error
        item.status = Status.FAILURE
        item.error = error
        self._finish(item, latency)
        return error

    def _finish(self, item: Work, latency: float) -> None:
        self.by_status[item.status.value if item.status else "?"] += 1
        self.attempts[item.attempts] += 1
        if self.on_final is not None:
            self._hand(self.on_final, item, latency)
        self._check_dry()

    def _hand(self, fn: Callable[..., None], *args: Any) -> None:
        """Pass an item on; a failure there is noted, never lets the call go uncounted."""
        try:
            fn(*args)
        except Exception as exc:
            self.hand_errors += 1
            if not self.first_hand_error:
                self.first_hand_error = f"{type(exc).__name__}: {exc}"[:300]

    def _check_dry(self) -> None:
        if not self.dry and self.supply.exhausted and not self._waiting and self.in_flight == 0:
            self.dry = True
            if self.on_dry is not None:
                self.on_dry()

    def summary(self) -> dict[str, Any]:
        """Counts for the report."""
        return {
            "taken": self.taken,
            "by_status": dict(self.by_status),
            "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            "retries": self.retries,
            "retries_by_reason": dict(self.retry_reasons.most_common(100)),
            "waiting_retries": len(self._waiting),
            "interrupted": self.interrupted,
            "starved_slots": self.starved,
            "dry": self.dry,
            "handler_errors": self.hand_errors,
        }
