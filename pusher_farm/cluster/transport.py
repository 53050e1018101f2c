"""ZeroMQ sockets for the farm: they move protocol messages and nothing else.

The coordinator binds a ROUTER, agents connect a DEALER with an identity of their own. Frames
that are not valid messages are counted, logged at most every few seconds, and dropped: a
stranger's bytes never crash or stall either side. Frames over ``MAX_MESSAGE_BYTES`` are
refused by ZeroMQ itself (``MAXMSGSIZE``), before they are ever read.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import zmq

from pusher_farm.cluster.protocol import MAX_MESSAGE_BYTES, Message, VersionMismatch, decode, encode
from pusher_farm.errors import ProtocolError

__all__ = ["BadFrames", "DealerTransport", "RouterTransport"]

log = logging.getLogger("pusher_farm.cluster")


class BadFrames:
    """Counts dropped frames and logs them at most once per ``every`` seconds."""

    def __init__(self, who: str, every: float = 5.0) -> None:
        self.who = who
        self.every = every
        self.total = 0
        self._since_log = 0
        self._last_log = -1e18
        self._last_reason = ""

    def drop(self, reason: str) -> None:
        self.total += 1
        self._since_log += 1
        self._last_reason = reason
        now = time.monotonic()
        if now - self._last_log >= self.every:
            log.warning("%s dropped %d bad frame(s); last: %s", self.who, self._since_log, reason)
            self._since_log = 0
            self._last_log = now


def _socket_options(sock: zmq.Socket[Any]) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)


class RouterTransport:
    """The coordinator's socket. Agents are named by their identity, decoded as text."""

    def __init__(self, context: zmq.Context[Any], bind: str, curve: tuple[bytes, bytes] | None = None) -> None:
        self.socket = context.socket(zmq.ROUTER)
        _socket_options(self.socket)
        if curve is not None:  # (public, secret): only agents the authenticator knows get in
            self.socket.curve_publickey, self.socket.curve_secretkey = curve
            self.socket.curve_server = True
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting agent takes its name back
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.socket.bind(bind)
        self.endpoint: str = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bad = BadFrames("coordinator")
        self._ids: dict[str, bytes] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0

    def poll(self, timeout: float) -> bool:
        # Round up: a wait under 1 ms truncated to 0 made callers spin until their next tick.
        return bool(self.socket.poll(max(0, math.ceil(timeout * 1000)), zmq.POLLIN))

    def recv_all(self, limit: int = 10_000) -> list[tuple[str, Message]]:
        """Every message waiting (up to ``limit``), bad frames dropped."""
        out: list[tuple[str, Message]] = []
        for _ in range(limit):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            if len(frames) != 2:
                self.bad.drop(f"{len(frames)} frames in one message (expected 1 after the identity)")
                continue
            ident, frame = frames
            self.bytes_in += len(frame)
            try:
                msg = decode(frame)
            except VersionMismatch as exc:
                self.bad.drop(str(exc))
                self._send(ident, encode("refused", reason=f"{exc}: upgrade one side"))
                continue
            except ProtocolError as exc:
                self.bad.drop(str(exc))
                continue
            name = ident.decode("utf-8", "backslashreplace")
            if name not in self._ids:
                if len(self._ids) > 100_000:
                    self._ids.clear()
                self._ids[name] = ident
            self.messages_in += 1
            out.append((name, msg))
        return out

    def send(self, agent: str, type_: str, fields: dict[str, Any]) -> None:
        ident = self._ids.get(agent)
        if ident is None:
            return
        self._send(ident, encode(type_, **fields))

    def _send(self, ident: bytes, frame: bytes) -> None:
        try:
            self.socket.send_multipart([ident, frame], zmq.NOBLOCK)
            self.bytes_out += len(frame)
        except zmq.Again:
            log.warning("send queue full: a message to %r dropped", ident)

    def close(self) -> None:
        self.socket.close(linger=0)


class DealerTransport:
    """An agent's socket to its coordinator."""

    def __init__(
        self, context: zmq.Context[Any], connect: str, identity: str, curve: tuple[bytes, bytes, bytes] | None = None
    ) -> None:
        self.socket = context.socket(zmq.DEALER)
        _socket_options(self.socket)
        if curve is not None:  # (public, secret, the coordinator's public key)
            self.socket.curve_publickey, self.socket.curve_secretkey, self.socket.curve_serverkey = curve
        self.socket.setsockopt(zmq.IDENTITY, identity.encode())
        self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self.socket.connect(connect)
        self.bad = BadFrames("agent")
        #: seconds ``close`` waits for queued messages to leave (0: drop them, e.g. stale ones)
        self.linger = 0.0

    def poll(self, timeout: float) -> bool:
        # Round up: a wait under 1 ms truncated to 0 made callers spin until their next tick.
        return bool(self.socket.poll(max(0, math.ceil(timeout * 1000)), zmq.POLLIN))

    def recv_all(self, limit: int = 10_000) -> list[Message]:
        out: list[Message] = []
        for _ in range(limit):
            try:
                frame = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                out.append(decode(frame))
            except ProtocolError as exc:
                self.bad.drop(str(exc))
        return out

    def send(self, type_: str, **fields: Any) -> bool:
        try:
            self.socket.send(encode(type_, **fields), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def close(self) -> None:
        self.socket.close(linger=int(self.linger * 1000))
