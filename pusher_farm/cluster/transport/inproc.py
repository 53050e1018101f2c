"""The farm in one process: a network of one hub and its links, with no sockets.

Frames are delivered ``delay`` seconds after they are sent, on the network's ``clock``; a
link can be cut (every frame to and from it dropped, as a pulled cable does) and healed. With
a fake clock, a test steps the coordinator and agents by hand and the farm behaves exactly as
over ZeroMQ, without sleeping: this is the seam that makes loss, partitions, late joins,
silence, duplicates and hostile peers testable in milliseconds. With ``realtime=True`` (the
clock is ``time.monotonic``) an empty ``recv`` waits for frames like a socket would.

It is not a mock: frames are the same bytes, decoded and checked by the same code.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["InprocHub", "InprocLink", "Network"]


class Network:
    """One hub (the coordinator) and any number of links (agents, by identity)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, delay: float = 0.0, realtime: bool = False
    ) -> None:
        self.clock = clock
        self.delay = delay
        self.realtime = realtime
        self._cond = threading.Condition()
        self._to_hub: deque[tuple[float, str, bytes]] = deque()
        self._links: dict[str, InprocLink] = {}
        self._cut: dict[str, float] = {}  # identity -> cut until (clock time), both ways
        self._cut_out: dict[str, float] = {}  # identity -> its frames to the hub lost until
        self.hub_endpoint = "inproc://farm"

    def hub(self) -> InprocHub:
        return InprocHub(self)

    def link(self, identity: str) -> InprocLink:
        """A new link for ``identity``; it replaces an older one of the same name (a fresh
        socket after a reconnect), whose queued frames are lost."""
        with self._cond:
            link = InprocLink(self, identity)
            self._links[identity] = link
            return link

    def cut(self, identity: str, seconds: float = math.inf, *, one_way: bool = False) -> None:
        """Drop every frame to and from ``identity`` for ``seconds``, frames in flight too;
        ``one_way``: only those from it (the coordinator still reaches it, but not back)."""
        with self._cond:
            until = self.clock() + seconds
            (self._cut_out if one_way else self._cut)[identity] = until
            link = self._links.get(identity)
            if link is not None and not one_way:
                link._inbox.clear()
            kept = [(t, who, f) for t, who, f in self._to_hub if who != identity]
            self._to_hub = deque(kept)

    def heal(self, identity: str) -> None:
        with self._cond:
            self._cut.pop(identity, None)
            self._cut_out.pop(identity, None)

    def inject(self, identity: str, frame: bytes) -> None:
        """A frame reaches the hub from ``identity``, which no link may back (a stranger)."""
        self._deliver_to_hub(identity, frame)

    def _is_cut(self, identity: str, cuts: dict[str, float] | None = None) -> bool:
        cuts = self._cut if cuts is None else cuts
        until = cuts.get(identity)
        if until is None:
            return False
        if self.clock() >= until:
            del cuts[identity]
            return False
        return True

    def _deliver_to_hub(self, identity: str, frame: bytes) -> bool:
        with self._cond:
            if self._is_cut(identity) or self._is_cut(identity, self._cut_out):
                return True  # the sender cannot tell a cut cable
            self._to_hub.append((self.clock() + self.delay, identity, bytes(frame)))
            self._cond.notify_all()
            return True

    def _deliver_to_link(self, identity: str, frame: bytes) -> bool:
        with self._cond:
            link = self._links.get(identity)
            if link is None or link.closed:
                return False
            if not self._is_cut(identity):
                link._inbox.append((self.clock() + self.delay, bytes(frame)))
                self._cond.notify_all()
            return True

    def _take(self, queue: deque[tuple[Any, ...]], timeout: float) -> list[tuple[Any, ...]]:
        """Every frame of ``queue`` due by now (waiting up to ``timeout`` for the first, in
        real time), without its delivery time."""
        with self._cond:
            if self.realtime and timeout > 0:
                self._cond.wait_for(lambda: _due(queue, self.clock()), timeout)
            now = self.clock()
            out = []
            while _due(queue, now):
                out.append(queue.popleft()[1:])
            return out


def _due(queue: deque[tuple[Any, ...]], now: float) -> bool:
    return bool(queue) and queue[0][0] <= now


class InprocHub:
    """The coordinator's end of a ``Network``."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.endpoint = network.hub_endpoint
        self.closed = False

    def recv(self, timeout: float) -> list[tuple[str, bytes]]:
        return [(who, frame) for who, frame in self.network._take(self.network._to_hub, timeout)]

    def send(self, peer: str, frame: bytes) -> bool:
        return not self.closed and self.network._deliver_to_link(peer, frame)

    @property
    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


class InprocLink:
    """An agent's end of a ``Network``."""

    def __init__(self, network: Network, identity: str) -> None:
        self.network = network
        self.identity = identity
        self.closed = False
        self._inbox: deque[tuple[float, bytes]] = deque()

    def recv(self, timeout: float) -> list[bytes]:
        return [frame for (frame,) in self.network._take(self._inbox, timeout)]

    def send(self, frame: bytes) -> bool:
        if self.closed:
            return False
        return self.network._deliver_to_hub(self.identity, frame)

    def close(self, linger: float = 0.0) -> None:
        self.closed = True
