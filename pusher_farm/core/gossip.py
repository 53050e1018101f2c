"""Lifecycle events of every slot and the listeners that hear them.

Each listener (a ``Gossiper``) gets its own bounded stream and its own thread, so a slow
listener never slows the schedule. When a listener's stream is full, the gossip is not queued
and not silently lost either: it is counted in the report (``gossip_dropped``). The owner of a
run closes every stream after the last call has ended; a listener's ``listen`` ends because
its stream ended, and the owner then calls its ``stop`` exactly once.
"""

from __future__ import annotations

import enum
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pusher_farm.core.worker import Worker

__all__ = ["Gossip", "Gossiper", "GossipStream", "When"]

_END = object()


class When(enum.Enum):
    """The moment of a slot a gossip tells about."""

    BEFORE_TARGET = "before-target"
    AFTER_TARGET = "after-target"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Gossip:
    """One event of one slot. Times are seconds on the run's clock (``time.monotonic``).

    ``seq`` is the slot's number in the schedule; ``intended`` its due time; ``started`` and
    ``ended`` are set once known (``None`` before); ``error`` is the failure's kind.
    """

    when: When
    worker: str
    seq: int
    intended: float
    started: float | None = None
    ended: float | None = None
    result: Any = None
    error: str | None = None


@runtime_checkable
class Gossiper(Protocol):
    """A listener. ``listen`` runs in a thread of its own and iterates ``gossips`` until the
    stream ends; ``stop`` is called once afterwards to flush and release what it holds."""

    def listen(self, worker: Worker, gossips: GossipStream) -> None: ...

    def stop(self) -> None: ...


class GossipStream:
    """A bounded, closable stream of gossips for one listener (iterate it to read)."""

    def __init__(self, capacity: int) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity)
        self.dropped = 0
        self.delivered = 0
        self.ended = False

    def offer(self, gossip: Gossip) -> None:
        """Put without ever blocking; count the gossip as dropped when the stream is full."""
        if self._slots.acquire(blocking=False):
            self._queue.put(gossip)
        else:
            self.dropped += 1

    def close(self) -> None:
        self._queue.put(_END)

    def __iter__(self) -> Iterator[Gossip]:
        while True:
            item = self._queue.get()
            if item is _END:
                self.ended = True
                return
            self._slots.release()
            self.delivered += 1
            yield item


class GossipHub:
    """Runs the listeners of one ``work`` call: a thread and a stream per listener."""

    def __init__(self, worker: Worker, listeners: Sequence[Gossiper], capacity: int) -> None:
        self.worker = worker
        self.listeners = tuple(listeners)
        self.streams = [GossipStream(capacity) for _ in self.listeners]
        self.errors: list[str] = []
        self._threads: list[threading.Thread] = []

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def start(self) -> None:
        for listener, stream in zip(self.listeners, self.streams, strict=True):
            t = threading.Thread(target=self._listen, args=(listener, stream), name=f"gossip:{listener!r}", daemon=True)
            t.start()
            self._threads.append(t)

    def _listen(self, listener: Gossiper, stream: GossipStream) -> None:
        try:
            listener.listen(self.worker, stream)
        except Exception as exc:  # a broken listener must not break the run
            self.errors.append(f"{type(listener).__name__}.listen: {type(exc).__name__}: {exc}")
        if not stream.ended:  # listen returned early: keep draining so offers never pile up
            for _ in stream:
                pass

    def publish(self, gossip: Gossip) -> None:
        for stream in self.streams:
            stream.offer(gossip)

    def close(self, timeout: float | None = None) -> None:
        """End every stream, wait for the listeners, then call each ``stop`` exactly once."""
        for stream in self.streams:
            stream.close()
        for t in self._threads:
            t.join(timeout)
        for listener in self.listeners:
            try:
                listener.stop()
            except Exception as exc:
                self.errors.append(f"{type(listener).__name__}.stop: {type(exc).__name__}: {exc}")

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.streams)
