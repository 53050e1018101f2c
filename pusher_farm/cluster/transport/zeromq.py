"""The farm over ZeroMQ: the coordinator binds a ROUTER, agents connect a DEALER each.

ZeroMQ errors never leave this module as such: they become ``FarmError`` with the endpoint and
what to do. Frames over ``MAX_MESSAGE_BYTES`` are refused by ZeroMQ itself (``MAXMSGSIZE``),
which drops that peer before anything is read. With keys, CURVE encrypts every frame and ZAP
(pyzmq's ``ThreadAuthenticator``) lets in only agents whose public key is authorised; agents
pin the coordinator's public key.

Resource handling: a ``ZmqHub`` owns its socket, its authenticator and (unless given one) its
context; a ``ZmqLink`` owns its socket. ``close`` releases them.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from pusher_farm.cluster.protocol.messages import MAX_MESSAGE_BYTES
from pusher_farm.cluster.transport.security import AgentKeys, CoordinatorKeys, check_bind, check_connect
from pusher_farm.errors import FarmError

__all__ = ["ZmqHub", "ZmqLink"]

log = logging.getLogger("pusher_farm.cluster")

#: the most frames one recv hands over (the rest wait for the next)
_BATCH = 10_000
#: peers whose identity the hub remembers (to send to them), least recently heard forgotten
_IDENTITIES = 100_000


def _socket_options(sock: zmq.Socket[Any]) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)


def _millis(timeout: float) -> int:
    # Round up: a wait under 1 ms truncated to 0 made callers spin until their next tick.
    return max(0, math.ceil(timeout * 1000))


class ZmqHub:
    """The coordinator's socket, bound to ``bind``. Binding beyond loopback needs ``keys``
    (only authorised agents get in), or ``insecure=True`` to accept anyone who connects."""

    def __init__(
        self,
        bind: str,
        *,
        keys: CoordinatorKeys | None = None,
        insecure: bool = False,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        check_bind(bind, secured=keys is not None or insecure)
        self._own_context = context is None
        self.context = context or zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._dropped = 0
        self._ids: OrderedDict[str, bytes] = OrderedDict()  # least recently heard first
        self.bytes_in = self.bytes_out = 0
        try:
            if keys is not None:
                # ZAP: the handshake of an agent whose public key is not authorised fails.
                self._auth = ThreadAuthenticator(self.context)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(keys.authorized))
            self.socket = self.context.socket(zmq.ROUTER)
            _socket_options(self.socket)
            if keys is not None:
                self.socket.curve_publickey, self.socket.curve_secretkey = keys.public, keys.secret
                self.socket.curve_server = True
            self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting agent takes its name back
            self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
            self.socket.bind(bind)
            self.endpoint: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            self.close()
            raise FarmError(f"cannot bind {bind}: {exc}") from None

    def recv(self, timeout: float) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if not self.socket.poll(_millis(timeout), zmq.POLLIN):
            return out
        for _ in range(_BATCH):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            if len(frames) != 2:  # identity + one frame, or it is not ours
                self._dropped += 1
                continue
            ident, frame = frames
            self.bytes_in += len(frame)
            name = ident.decode("utf-8", "backslashreplace")
            ids = self._ids
            if name in ids:
                ids.move_to_end(name)  # heard just now: the last to be forgotten
            else:
                ids[name] = ident
                if len(ids) > _IDENTITIES:  # strangers cycling identities cannot grow this,
                    ids.popitem(last=False)  # nor push out agents that talk every second
            out.append((name, frame))
        return out

    def send(self, peer: str, frame: bytes) -> bool:
        ident = self._ids.get(peer)
        if ident is None:
            return False
        try:
            self.socket.send_multipart([ident, frame], zmq.NOBLOCK)
        except zmq.Again:
            log.warning("send queue to %r full: a message was dropped", peer)
            return False
        self.bytes_out += len(frame)
        return True

    @property
    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        sock = getattr(self, "socket", None)
        if sock is not None and not sock.closed:
            sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_context and not self.context.closed:
            self.context.term()


class ZmqLink:
    """An agent's socket to the coordinator at ``connect``, named ``identity``; with ``keys``
    it talks only to the coordinator whose public key they hold."""

    def __init__(self, context: zmq.Context[Any], connect: str, identity: str, keys: AgentKeys | None = None) -> None:
        check_connect(connect)
        self.socket = context.socket(zmq.DEALER)
        try:
            _socket_options(self.socket)
            if keys is not None:
                self.socket.curve_publickey, self.socket.curve_secretkey = keys.public, keys.secret
                self.socket.curve_serverkey = keys.server
            self.socket.setsockopt(zmq.IDENTITY, identity.encode())
            self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
            self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            self.socket.connect(connect)
        except zmq.ZMQError as exc:
            self.socket.close(linger=0)
            raise FarmError(f"cannot connect to {connect}: {exc}") from None

    def recv(self, timeout: float) -> list[bytes]:
        out: list[bytes] = []
        if not self.socket.poll(_millis(timeout), zmq.POLLIN):
            return out
        for _ in range(_BATCH):
            try:
                out.append(self.socket.recv(zmq.NOBLOCK))
            except zmq.Again:
                break
        return out

    def send(self, frame: bytes) -> bool:
        try:
            self.socket.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def close(self, linger: float = 0.0) -> None:
        if not self.socket.closed:
            self.socket.close(linger=int(linger * 1000))
