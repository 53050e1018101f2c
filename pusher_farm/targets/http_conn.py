"""One keep-alive HTTP/1.1 connection of the lean engine: one exchange at a time.

An ``asyncio.Protocol`` (uvloop's C transports when uvloop runs the loop) whose responses are
parsed by ``httptools``. It tells ``done`` when each request was written and when the first
byte of its answer came (the executor derives ``ttfb`` and ``receive``), and sets the phases
that happened on the call's token (its ``Context``, ``phases``): ``wait`` (for a connection),
``connect`` (TCP) and ``tls`` (the handshake). ``CheckedConnection`` also keeps the headers and the
body, for response checks; the plain one parses no more than the status line and framing.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import httptools

if TYPE_CHECKING:
    from pusher_farm.targets.engine import Done, HttpEngine

__all__ = [
    "BAD_RESPONSE",
    "CANCELLED",
    "CONNECT_ERROR",
    "CONNECT_REFUSED",
    "CONNECT_TIMEOUT",
    "CONNECTION_CLOSED",
    "CONNECTION_RESET",
    "TLS_ERROR",
    "CheckedConnection",
    "Connection",
]

CONNECT_REFUSED = "ConnectRefused"
CONNECT_TIMEOUT = "ConnectTimeout"
CONNECT_ERROR = "ConnectError"
TLS_ERROR = "TLSError"
CONNECTION_RESET = "ConnectionReset"
CONNECTION_CLOSED = "ConnectionClosed"
BAD_RESPONSE = "BadResponse"
#: the caller gave up on the exchange (its timeout, or the run ending)
CANCELLED = "Cancelled"

_clock = time.monotonic


class _HeadDone(Exception):
    """Raised from the parser callback to end a HEAD response at its headers."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; carries at most one exchange at a time."""

    __slots__ = (
        "engine",
        "transport",
        "parser",
        "token",
        "done",
        "status",
        "keep",
        "complete",
        "got",
        "head",
        "headers_done",
        "reused",
        "dead",
        "connector",
        "sent",
        "first",
        "opening",
        "waited",
        "fresh",
        "marking",
    )

    def __init__(self, engine: HttpEngine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.token: Any = None
        self.done: Done | None = None
        self.status = 0
        self.keep = True
        self.complete = False
        self.got = False  # any byte of the current response arrived
        self.head = b""  # the response's bytes up to the end of its headers
        self.headers_done = False
        self.reused = False
        self.dead = False
        self.connector: asyncio.Task[Any] | None = None
        self.sent = 0.0  # when the request was written
        self.first = 0.0  # when the first response byte came
        #: the phases of opening this connection, told with its first exchange
        self.opening: tuple[tuple[str, float], ...] = ()
        #: how long the current call waited for a connection (0: it did not)
        self.waited = 0.0
        #: newly opened: its first exchange has not ended yet
        self.fresh = False
        #: stamp each answer's first byte (the engine's ``phases``)
        self.marking = engine.phases

    # -- the exchange ----------------------------------------------------------------------

    def send(self, token: Any, done: Done, reused: bool, *, now: bool = False) -> None:
        """Write the request for ``token``; ``now``: right as its call was launched (its
        ``started`` is when it was sent, no need to read the clock again)."""
        self.token = token
        self.done = done
        self.reused = reused
        self.complete = False
        self.got = False
        self.head = b""
        self.headers_done = False
        self.first = 0.0
        self.sent = 0.0 if now else _clock()
        engine = self.engine
        request = (token.payload or engine.request) if engine.templated else engine.request
        self.transport.write(request)  # type: ignore[union-attr]

    def cancel(self) -> None:
        """Abandon the exchange in flight (its caller timed out): the connection is closed."""
        if self.done is None:
            return
        if self.connector is not None and not self.connector.done():
            self.engine.detach(self)  # still opening: the call ends, the connection goes on
            return
        self.fail(CANCELLED)

    def finish(self, status: int | None, error: str | None) -> None:
        done, token = self.done, self.token
        self.done = self.token = None
        if self.opening or self.waited:
            self._tell_phases(token)
        if self.first:  # when the request went (0: as its call was launched) and the answer began
            done(token, status, error, self.sent, self.first)  # type: ignore[misc]
        else:
            done(token, status, error)  # type: ignore[misc]

    def _tell_phases(self, token: Any) -> None:
        """The call waited for a connection, or this one was opened for it: say how long."""
        phases = (("wait", self.waited), *self.opening) if self.waited else self.opening
        self.opening = ()
        self.waited = 0.0
        if self.got:
            try:
                token.phases = phases
            except AttributeError:
                pass

    def fail(self, error: str) -> None:
        self.close()
        self.finish(None, error)

    def close(self, *, graceful: bool = False) -> None:
        """Close the connection: ``graceful`` (after a complete exchange) says goodbye at the
        TLS level too, so its session stays good for resumption (a session of a connection
        dropped without a TLS close is spoiled); else it is aborted."""
        if not self.dead:
            self.dead = True
            self.engine.open -= 1
            if self.transport is not None:
                if graceful:
                    self.transport.close()
                else:
                    self.transport.abort()
            self.engine.refill()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.done is None:  # bytes nobody asked for: the server is not speaking HTTP/1.1 to us
            self.close()
            return
        if not self.got:
            self.got = True
            if self.marking:
                self.first = _clock()
        if not self.headers_done:
            self.head += data
        try:
            self.parser.feed_data(data)
        except _HeadDone:
            pass
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadDone) and not isinstance(exc.__cause__, _HeadDone):
                self.fail(BAD_RESPONSE)
                return
        except httptools.HttpParserError:
            self.fail(BAD_RESPONSE)
            return
        if self.complete:
            self.completed()

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.engine.head_only:
            self.status = self.parser.get_status_code()
            self.keep = self.parser.should_keep_alive()
            self.complete = True
            raise _HeadDone

    def on_message_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep = self.parser.should_keep_alive()
        self.complete = True

    def verdict(self) -> str | None:
        status = self.status
        return None if 200 <= status < 300 else f"HTTP {status}"

    #: whether ``verdict`` is more than the 2xx rule (checked connections)
    checked = False

    def completed(self) -> None:
        status = self.status
        engine = self.engine
        error = self.verdict() if self.checked else (None if 200 <= status < 300 else f"HTTP {status}")
        if not self.keep:  # the server closes after this response
            self.close(graceful=True)
            self.finish(status, error)
            return
        if engine.head_only:  # the parser stopped at the headers: a new one for the next response
            self.parser = httptools.HttpResponseParser(self)
        self.finish(status, error)
        if not self.dead:
            if engine._waiting or self.fresh:
                engine.release(self)
            else:
                engine._idle.append(self)  # the usual case, inline: this is once per call

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        engine = self.engine
        if not self.dead:
            self.dead = True
            engine.open -= 1
            engine.refill()
        if self.done is None:  # idle: forget it
            engine.forget(self)
            return
        if self.reused and not self.got:
            # A kept-alive connection the server had already closed: the request never reached
            # it, so it is sent again, once, on a new connection.
            token, done = self.token, self.done
            self.done = self.token = None
            engine.retry(token, done)
            return
        if self.headers_done and not self.complete and _delimited_by_close(self.head):
            self.status = self.parser.get_status_code()  # the body ends with the connection
            self.finish(self.status, self.verdict())
            return
        self.finish(None, CONNECTION_RESET if isinstance(exc, ConnectionResetError) else CONNECTION_CLOSED)


class CheckedConnection(Connection):
    """A connection that keeps each response's headers and body for the engine's checks."""

    __slots__ = ("headers", "body")
    checked = True

    def __init__(self, engine: HttpEngine) -> None:
        super().__init__(engine)
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()

    def send(self, token: Any, done: Done, reused: bool, *, now: bool = False) -> None:
        self.headers = []
        self.body = bytearray()
        super().send(token, done, reused, now=now)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.engine.checks.needs_headers:
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        if self.engine.checks.needs_body and len(self.body) < self.engine.max_body:
            self.body += body

    def verdict(self) -> str | None:
        return self.engine.checks.verdict(self.status, tuple(self.headers), bytes(self.body))


def _delimited_by_close(head: bytes) -> bool:
    end = head.find(b"\r\n\r\n")
    lowered = (head if end < 0 else head[:end]).lower()
    return b"\ncontent-length:" not in lowered and b"\ntransfer-encoding:" not in lowered
