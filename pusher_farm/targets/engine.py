"""A lean HTTP/1.1 client: one fixed request, many times, over a keep-alive pool.

Built for one job, sending the same request at a high rate with as little CPU per request as
the loop allows: connections are ``asyncio.Protocol``s (``http_conn``), responses are parsed
by ``httptools``, the request bytes are built once, and a call is a callback, not a task:
``start(token, done)`` writes the request on an idle connection and ``done(token, status,
error)`` is called once when the response is complete or the exchange failed.

**No self-made connection storm.** At most ``connecting`` connections are being opened at once
(TCP connect and TLS handshake); a call that finds no idle connection and no room to open one
waits for the first connection to come free or to finish opening, and its wait is part of its
latency (and reported as its ``wait`` phase). A pool therefore grows at the pace the target
accepts connections. Without the bound, a cold start at a few thousand calls per second over
TLS opened one connection per due slot: handshakes took the generator's CPU, calls piled up,
the pool grew to the calls in flight and more handshakes followed. A connection whose call
gave up while it was being opened still joins the pool: the handshake is not wasted.

``warm(n)`` opens ``n`` connections ahead of a run. With TLS, the engine offers the session of
an earlier handshake on each new connection (resumption: an abbreviated handshake, much cheaper
on both sides; see tls.py), ``resume=False`` turns that off.

What it does: Content-Length, chunked and read-until-close bodies (read in full, then
discarded unless a check needs them), ``HEAD``, keep-alive with ``Connection: close`` and
server-side closes handled (a request that found its reused connection closed before any byte
came back is sent once more on a new connection, as browsers and curl do), TLS through the
loop's SSL support, a connect timeout, response checks (``checks``). The read timeout is the
caller's: ``cancel()`` on the handle ``start`` returned aborts the exchange. What it does not
do: redirects, cookies, proxies, compression, pipelining (the ``aiohttp`` engine of the
``http`` target covers the first three).

Errors are counted by kind: ``ConnectRefused``, ``ConnectTimeout``, ``ConnectError`` (DNS and
other socket errors), ``TLSError``, ``ConnectionReset`` (reset mid-exchange),
``ConnectionClosed`` (closed before the response was complete), ``BadResponse`` (not HTTP/1.x),
``HTTP <status>`` for a complete response outside 2xx, and the checks' ``Check ...``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pusher_farm.targets.checks import Checks
from pusher_farm.targets.http_conn import (  # the error kinds live there, with the exchange
    CANCELLED,
    CONNECT_ERROR,
    CONNECT_REFUSED,
    CONNECT_TIMEOUT,
    CONNECTION_CLOSED,
    TLS_ERROR,
    CheckedConnection,
    Connection,
)
from pusher_farm.targets.tls import ClientTls

__all__ = ["DEFAULT_CONNECTING", "HttpEngine", "build_request"]

#: connections being opened at once, by default (see scripts/bench_http.py's TLS rungs)
DEFAULT_CONNECTING = 8

#: done(token, status or None, error kind or None[, sent, first byte]): when an answer began,
#: also when its request was sent (0: as ``start`` was called) and when its first byte came
Done = Callable[..., None]

_USER_AGENT = "pusher-farm"
_clock = time.monotonic


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


class HttpEngine:
    """Sends ``method url`` with ``headers`` and ``body`` over a keep-alive pool.

    ``connections`` caps the pool (0: no cap of its own; a caller that bounds its calls in
    flight, as the executor does with overtime, never has more connections open than calls in
    flight); ``connecting`` bounds the connections being opened at once. Calls beyond either
    wait for a connection, first come first served.
    """

    def __init__(
        self,
        url: str,
        method: str = "GET",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        *,
        connections: int = 0,
        connecting: int = DEFAULT_CONNECTING,
        connect_timeout: float = 5.0,
        verify: bool = True,
        resume: bool = True,
        checks: Checks | None = None,
        max_body: int = 1 << 20,
        phases: bool = True,
        templated: bool = False,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        if connecting < 1:
            raise ValueError("connecting must be at least 1")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = ClientTls(verify=verify, resume=resume) if parts.scheme == "https" else None
        self.ssl = self.tls.context if self.tls is not None else None
        #: tell each call when its request went and its answer began (ttfb and receive)
        self.phases = phases
        self.request = build_request(method, url, headers, body)
        #: each call's token (a Context) may carry its own request bytes (``payload``)
        self.templated = templated
        self.head_only = method == "HEAD"
        self.checks = checks or Checks()
        self.max_body = max_body
        self._conn_class = Connection if self.checks.plain else CheckedConnection
        self.connections = connections
        self.connecting_most = connecting
        self.connect_timeout = connect_timeout
        #: connections ever opened (each counted when its connect starts), of which ``warmed``
        #: by ``warm``; the most opening at once
        self.opened = self.warmed = 0
        self.connecting_peak = 0
        #: connections open or opening now, and opening now
        self.open = 0
        self.connecting = 0
        self._idle: list[Connection] = []
        self._waiting: deque[_Waiting] = deque()
        self._opening: set[Connection] = set()
        self._addresses: list[tuple[Any, ...]] = []

    # -- calls ------------------------------------------------------------------------------

    def start(self, token: Any, done: Done) -> Any:
        """Send the request; ``done(token, status, error)`` follows once, never from inside this
        call. Returns a handle whose ``cancel()`` abandons the exchange."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.dead:
                conn.send(token, done, True, now=True)
                return conn
        if self._may_open():
            return self._open(token, done)
        return _Waiting(self, token, done)

    def _may_open(self) -> bool:
        return self.connecting < self.connecting_most and not (self.connections and self.open >= self.connections)

    def _open(self, token: Any, done: Done | None, waited: float = 0.0) -> Connection:
        conn = self._conn_class(self)
        conn.token, conn.done, conn.waited = token, done, waited
        self.opened += 1
        self.open += 1
        self.connecting += 1
        self.connecting_peak = max(self.connecting_peak, self.connecting)
        self._opening.add(conn)
        conn.connector = asyncio.get_running_loop().create_task(self._connect(conn))
        return conn

    def release(self, conn: Connection) -> None:
        """``conn`` is free: it serves the first waiting call, or waits in the idle pool."""
        if conn.fresh:
            conn.fresh = False
            if self.tls is not None and conn.transport is not None:
                self.tls.keep(conn.transport.get_extra_info("ssl_object"))
        while self._waiting:
            waiting = self._waiting.popleft()
            if waiting.token is not None:
                waiting.serve(conn)
                return
        self._idle.append(conn)

    def refill(self) -> None:
        """Open connections for waiting calls while the bounds allow (one finished opening, or
        one died)."""
        waiting = self._waiting
        while waiting and self._may_open():
            w = waiting.popleft()
            if w.token is not None:
                w.conn = self._open(w.token, w.done, _clock() - w.since)

    def retry(self, token: Any, done: Done) -> None:
        """The same exchange again, on a new connection (its reused one was closed unanswered)."""
        if self._may_open():
            self._open(token, done)
        else:
            self._waiting.appendleft(_Waiting(self, token, done, queue=False))

    def forget(self, conn: Connection) -> None:
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    # -- connecting -------------------------------------------------------------------------

    async def _connect(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        began = _clock()
        sock: socket.socket | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if not self._addresses:
                    self._addresses = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                family, kind, proto, _, address = self._addresses[0]
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
                connected = _clock()
                await loop.create_connection(
                    lambda: conn, sock=sock, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                )
                sock = None  # the transport owns it now
                ready = _clock()
        except asyncio.CancelledError:
            error = CANCELLED
            raise
        except TimeoutError:
            error = CONNECT_TIMEOUT
        except ConnectionRefusedError:
            error = CONNECT_REFUSED
        except _ssl.SSLError:
            error = TLS_ERROR
        except OSError:
            error = CONNECT_ERROR
        finally:
            if sock is not None:
                sock.close()
            self.connecting -= 1
            self._opening.discard(conn)
            conn.connector = None
            if error is not None:
                if error == CONNECT_ERROR:
                    self._addresses = []  # resolve again next time
                if conn.done is not None:
                    conn.fail(error)
                else:
                    conn.close()
        if error is not None:
            return
        conn.fresh = True
        if self.tls is not None:
            self.tls.handshaken(conn.transport.get_extra_info("ssl_object") if conn.transport is not None else None)
            conn.opening = (("connect", connected - began), ("tls", ready - connected))
        else:
            conn.opening = (("connect", connected - began),)
        if conn.dead:  # closed by the server during the handshake
            if conn.done is not None:
                conn.finish(None, CONNECTION_CLOSED)
        elif conn.done is None:  # its call gave up while it was opening: it joins the pool
            conn.opening = ()
            self.release(conn)
        else:
            conn.send(conn.token, conn.done, False)
        self.refill()

    def detach(self, conn: Connection) -> None:
        """The call of ``conn``, still opening, gives up (its timeout): it ends as CANCELLED now
        and the connection, once open, serves the next call."""
        conn.opening = ()
        conn.finish(None, CANCELLED)

    async def warm(self, n: int, until: float | None = None) -> None:
        """Open ``n`` connections (within the ``connecting`` bound) and leave them idle; return
        when they are open, or at ``until`` (``time.monotonic``) with the rest still opening."""
        target = self.warmed + n
        while self.warmed < target and (until is None or _clock() < until):
            if self._may_open():
                self.warmed += 1
                self._open(None, None)
            else:
                await asyncio.sleep(0.001)
        while self.connecting and (until is None or _clock() < until):
            await asyncio.sleep(0.001)

    def counters(self) -> dict[str, int]:
        """What the engine did so far (cumulative): connections opened (and how many of them
        by ``warm``), TLS handshakes in full and resumed."""
        return {
            "connections_opened": self.opened,
            "connections_warmed": self.warmed,
            "tls_full_handshakes": self.tls.full if self.tls is not None else 0,
            "tls_resumed_handshakes": self.tls.resumed if self.tls is not None else 0,
        }

    async def aclose(self) -> None:
        """Close every idle connection and stop opening; calls still waiting for a connection
        end as CANCELLED. (Busy connections end with their exchange: the caller cancels what it
        gives up on.)"""
        while self._waiting:
            self._waiting.popleft().cancel()
        for conn in list(self._opening):
            if conn.connector is not None:
                conn.connector.cancel()
        for conn in list(self._idle):
            conn.close(graceful=True)
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports deliver connection_lost


class _Waiting:
    """A call waiting for a connection; the handle ``start`` returned for it."""

    __slots__ = ("engine", "token", "done", "conn", "since")

    def __init__(self, engine: HttpEngine, token: Any, done: Done, *, queue: bool = True) -> None:
        self.engine = engine
        self.token = token
        self.done = done
        self.conn: Connection | None = None
        self.since = _clock()
        if queue:
            engine._waiting.append(self)

    def serve(self, conn: Connection) -> None:
        self.conn = conn
        conn.waited = _clock() - self.since
        conn.send(self.token, self.done, True)

    def cancel(self) -> None:
        if self.conn is not None:
            self.conn.cancel()
            return
        token, self.token = self.token, None  # it stays in the queue, skipped
        if token is not None:
            self.done(token, None, CANCELLED)
