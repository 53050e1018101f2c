"""The seam between the farm's state machines and the network: transports move frames.

A transport knows nothing of messages: it moves bytes between a coordinator (a ``Hub``, many
peers, each named by its identity) and agents (a ``Link``, one peer). ``protocol.py`` turns
frames into messages and the state machines decide; so the same farm logic runs over ZeroMQ
(``transport_zmq``) and over the in-process network (``transport_inproc``), where tests drive
it with a fake clock, no sockets and no sleeps.

Both sides are owned by their driver, which closes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Hub", "Link", "LinkFactory"]


class Hub(Protocol):
    """The coordinator's end: frames from and to many peers, each named by its identity."""

    #: where agents connect (the bound address, with the port the system chose)
    endpoint: str

    def recv(self, timeout: float) -> list[tuple[str, bytes]]:
        """Every frame waiting, as (peer, frame), after waiting up to ``timeout`` seconds for
        the first; malformed deliveries are dropped and counted in ``dropped``."""
        ...

    def send(self, peer: str, frame: bytes) -> bool:
        """Queue ``frame`` for ``peer`` without blocking; False when it could not be queued."""
        ...

    @property
    def dropped(self) -> int:
        """Deliveries dropped before they were frames (e.g. multipart messages)."""
        ...

    def close(self) -> None: ...


class Link(Protocol):
    """An agent's end: frames from and to its coordinator."""

    def recv(self, timeout: float) -> list[bytes]: ...

    def send(self, frame: bytes) -> bool: ...

    def close(self, linger: float = 0.0) -> None:
        """Close; queued frames get ``linger`` seconds to leave (0: dropped, e.g. stale ones)."""
        ...


#: makes a fresh link to the coordinator (an agent reconnects by making a new one)
LinkFactory = Callable[[], Link]
