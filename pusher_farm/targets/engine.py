"""A lean HTTP/1.1 client: one fixed request, many times, over a keep-alive pool.

Built for one job, sending the same request at a high rate with as little CPU per request as
the loop allows: connections are ``asyncio.Protocol``s (uvloop's C transports when uvloop runs
the loop), responses are parsed by ``httptools`` (llhttp, the parser uvicorn uses), the request
bytes are built once, and a call is a callback, not a task: ``start(token, done)`` writes the
request on an idle connection and ``done(token, status, error)`` is called once when the
response is complete or the exchange failed.

What it does: Content-Length, chunked and read-until-close bodies (read in full, then
discarded), ``HEAD``, keep-alive with ``Connection: close`` and server-side closes handled (a
request that found its reused connection closed before any byte came back is sent once more on
a new connection, as browsers and curl do), TLS through the loop's SSL support, a connect
timeout. The read timeout is the caller's: ``cancel()`` on the handle ``start`` returned aborts
the exchange. What it does not do: redirects, cookies, proxies, compression, pipelining (the
``aiohttp`` engine of the ``http`` target covers the first three).

Errors are counted by kind: ``ConnectRefused``, ``ConnectTimeout``, ``ConnectError`` (DNS and
other socket errors), ``TLSError``, ``ConnectionReset`` (reset mid-exchange),
``ConnectionClosed`` (closed before the response was complete), ``BadResponse`` (not HTTP/1.x)
and ``HTTP <status>`` for a complete response outside 2xx.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = [
    "BAD_RESPONSE",
    "CANCELLED",
    "CONNECT_ERROR",
    "CONNECT_REFUSED",
    "CONNECT_TIMEOUT",
    "CONNECTION_CLOSED",
    "CONNECTION_RESET",
    "TLS_ERROR",
    "HttpEngine",
    "build_request",
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

#: done(token, status or None, error kind or None)
Done = Callable[[Any, "int | None", "str | None"], None]

_USER_AGENT = "pusher-farm"


class _HeadDone(Exception):
    """Raised from the parser callback to end a HEAD response at its headers."""


def build_request(
    method: str, url: str, headers: list[tuple[str, str]] | None = None, body: bytes | None = None
) -> bytes:
    """The request's bytes on the wire, built once."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    given = {name.lower() for name, _ in headers or ()}
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {parts.netloc.rpartition('@')[2]}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {_USER_AGENT}")
    if "accept" not in given:
        lines.append("Accept: */*")
    for name, value in headers or ():
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    if "content-length" not in given and (body is not None or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class _Connection(asyncio.Protocol):
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

    # -- the exchange ----------------------------------------------------------------------

    def send(self, token: Any, done: Done, reused: bool) -> None:
        self.token = token
        self.done = done
        self.reused = reused
        self.complete = False
        self.got = False
        self.head = b""
        self.headers_done = False
        self.transport.write(self.engine.request)  # type: ignore[union-attr]

    def cancel(self) -> None:
        """Abandon the exchange in flight (its caller timed out): the connection is closed."""
        if self.done is None:
            return
        if self.connector is not None and not self.connector.done():
            self.connector.cancel()  # still connecting: _connect reports CANCELLED
            return
        self._fail(CANCELLED)

    def _finish(self, status: int | None, error: str | None) -> None:
        done, token = self.done, self.token
        self.done = self.token = None
        assert done is not None
        done(token, status, error)

    def _fail(self, error: str) -> None:
        self._close()
        self._finish(None, error)

    def _close(self) -> None:
        if not self.dead:
            self.dead = True
            self.engine.open -= 1
            if self.transport is not None:
                self.transport.abort()
            if self.engine._waiting:
                self.engine._refill()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.done is None:  # bytes nobody asked for: the server is not speaking HTTP/1.1 to us
            self._close()
            return
        self.got = True
        if not self.headers_done:
            self.head += data
        try:
            self.parser.feed_data(data)
        except _HeadDone:
            pass
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HeadDone) and not isinstance(exc.__cause__, _HeadDone):
                self._fail(BAD_RESPONSE)
                return
        except httptools.HttpParserError:
            self._fail(BAD_RESPONSE)
            return
        if self.complete:
            self._complete()

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

    def _complete(self) -> None:
        status = self.status
        engine = self.engine
        error = None if 200 <= status < 300 else f"HTTP {status}"
        if not self.keep:  # the server closes after this response
            self._close()
            self._finish(status, error)
            return
        if engine.head_only:  # the parser stopped at the headers: a new one for the next response
            self.parser = httptools.HttpResponseParser(self)
        self._finish(status, error)
        if not self.dead:
            if engine._waiting:
                engine._waiting.popleft().serve(self)
            else:
                engine._idle.append(self)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        engine = self.engine
        if not self.dead:
            self.dead = True
            engine.open -= 1
            if engine._waiting:
                engine._refill()
        if self.done is None:  # idle: forget it
            try:
                engine._idle.remove(self)
            except ValueError:
                pass
            return
        if self.reused and not self.got:
            # A kept-alive connection the server had already closed: the request never reached
            # it, so it is sent again, once, on a new connection.
            token, done = self.token, self.done
            self.done = self.token = None
            engine._open_for(token, done)  # the same exchange, on a new connection
            return
        if self.headers_done and not self.complete and _delimited_by_close(self.head):
            self._finish(self.parser.get_status_code(), None)  # the body ends where the connection does
            return
        self._finish(None, CONNECTION_RESET if isinstance(exc, ConnectionResetError) else CONNECTION_CLOSED)


def _delimited_by_close(head: bytes) -> bool:
    end = head.find(b"\r\n\r\n")
    lowered = (head if end < 0 else head[:end]).lower()
    return b"\ncontent-length:" not in lowered and b"\ntransfer-encoding:" not in lowered


class HttpEngine:
    """Sends ``method url`` with ``headers`` and ``body`` over a keep-alive pool.

    ``connections`` caps the pool (0: no cap of its own; a caller that bounds its calls in
    flight, as the executor does with overtime, never has more connections open than calls in
    flight). Calls beyond the cap wait for a connection, first come first served.
    """

    def __init__(
        self,
        url: str,
        method: str = "GET",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        *,
        connections: int = 0,
        connect_timeout: float = 5.0,
        verify: bool = True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: _ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = _ssl.create_default_context()
            if not verify:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = _ssl.CERT_NONE
        self.request = build_request(method, url, headers, body)
        self.head_only = method == "HEAD"
        self.connections = connections
        self.connect_timeout = connect_timeout
        #: connections ever opened (each counted when its connect starts)
        self.opened = 0
        #: connections open or opening now
        self.open = 0
        self._idle: list[_Connection] = []
        self._waiting: deque[_Waiting] = deque()

    def start(self, token: Any, done: Done) -> Any:
        """Send the request; ``done(token, status, error)`` follows once, never from inside this
        call. Returns a handle whose ``cancel()`` abandons the exchange."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.dead:
                conn.send(token, done, True)
                return conn
        if self.connections and self.open >= self.connections:
            return _Waiting(self, token, done)
        return self._open_for(token, done)

    def _open_for(self, token: Any, done: Done) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(self)
        conn.token, conn.done = token, done
        self.opened += 1
        self.open += 1
        conn.connector = loop.create_task(self._connect(conn))
        return conn

    async def _connect(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await loop.create_connection(
                    lambda: conn, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                )
        except asyncio.CancelledError:
            conn.connector = None
            if conn.done is not None:
                conn._fail(CANCELLED)
            raise
        except TimeoutError:
            error = CONNECT_TIMEOUT
        except ConnectionRefusedError:
            error = CONNECT_REFUSED
        except _ssl.SSLError:
            error = TLS_ERROR
        except OSError:
            error = CONNECT_ERROR
        else:
            conn.connector = None
            if conn.done is None:  # abandoned while connecting
                conn._close()
            elif conn.dead:  # closed by the server during the handshake
                conn._finish(None, CONNECTION_CLOSED)
            else:
                conn.send(conn.token, conn.done, False)
            return
        conn.connector = None
        if conn.done is not None:
            conn._fail(error)

    def _refill(self) -> None:
        """Open connections for waiting calls while the cap allows (a connection died)."""
        while self._waiting and self.open < self.connections:
            waiting = self._waiting.popleft()
            waiting.conn = self._open_for(waiting.token, waiting.done)

    async def aclose(self) -> None:
        """Close every idle connection; calls still waiting for one end as CANCELLED. (Busy
        connections end with their exchange: the caller cancels what it gives up on.)"""
        while self._waiting:
            self._waiting[0].cancel()
        for conn in list(self._idle):
            conn._close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports deliver connection_lost


class _Waiting:
    """A call waiting for a connection of a capped pool; the handle ``start`` returned for it."""

    __slots__ = ("engine", "token", "done", "conn")

    def __init__(self, engine: HttpEngine, token: Any, done: Done) -> None:
        self.engine = engine
        self.token = token
        self.done = done
        self.conn: _Connection | None = None
        engine._waiting.append(self)

    def serve(self, conn: _Connection) -> None:
        self.conn = conn
        conn.send(self.token, self.done, True)

    def cancel(self) -> None:
        if self.conn is not None:
            self.conn.cancel()
            return
        self.engine._waiting.remove(self)
        self.done(self.token, None, CANCELLED)
