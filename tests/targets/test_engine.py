"""The lean HTTP/1.1 engine against raw socket servers made here, through the whole executor.

Each server speaks just enough HTTP to behave in one way (keep-alive, chunked, closing,
resetting, slow, broken); the tests check that every call is counted with the right kind, that
connections are reused, and that no socket outlives the run.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

import pytest

import pusher_farm as pf
from pusher_farm.targets import resolve
from pusher_farm.targets.engine import build_request

Handler = Callable[[socket.socket, "RawServer"], None]


class RawServer:
    """A threaded TCP server on 127.0.0.1: ``handler(conn, server)`` serves one connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/"
        self.accepted = 0
        self.requests = 0
        self.lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        except OSError:
            pass
        self.sock.close()
        self._acceptor.join(5)
        for t in self._threads:
            t.join(5)

    def _accept(self) -> None:
        while not self._closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)  # the handshake, here
                self.handler(conn, self)
                if self.tls is not None:
                    conn.unwrap()  # close_notify, as servers do: an unclean end spoils the session
            except OSError:  # ssl.SSLError included: a client that refused our certificate
                pass

    def read_request(self, conn: socket.socket, buf: bytearray) -> bool:
        """Read one request (head and Content-Length body) off ``conn``; False at EOF."""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return False
            buf += data
        end = buf.index(b"\r\n\r\n") + 4
        head = bytes(buf[:end]).lower()
        length = 0
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(buf) < end + length:
            data = conn.recv(65536)
            if not data:
                return False
            buf += data
        del buf[: end + length]
        with self.lock:
            self.requests += 1
        return True


def serve_each(response: bytes, *, close: bool = False) -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        while server.read_request(conn, buf):
            conn.sendall(response)
            if close:
                return

    return handler


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fds_back_to(baseline: int) -> int:
    """Open fds once the sockets closed by the run are gone (polled up to 3 s)."""
    deadline = time.monotonic() + 3
    while open_fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return open_fds()


@pytest.fixture
def fd_baseline():
    pf.work(10, 0.1, resolve("noop"))  # warm up: the loop, the thread pool, imports
    return open_fds()


def test_build_request_is_made_once_with_host_length_and_headers():
    raw = build_request("POST", "http://h:8080/a/b?x=1", [("X-A", "1")], b"hello")
    assert raw.startswith(b"POST /a/b?x=1 HTTP/1.1\r\nHost: h:8080\r\n")
    assert b"\r\nX-A: 1\r\n" in raw and b"\r\nContent-Length: 5\r\n" in raw
    assert raw.endswith(b"\r\n\r\nhello")
    assert b"Content-Length" not in build_request("GET", "http://h/", None, None)
    with pytest.raises(ValueError, match="line break"):
        build_request("GET", "http://h/", [("X", "a\r\nEvil: 1")], None)


def test_keep_alive_reuses_at_most_pool_size_connections_over_1000_requests(fd_baseline):
    with RawServer(serve_each(OK)) as server:
        target = resolve("http", {"url": server.url})
        r = pf.work(2000, 0.5, target, pf.with_overtime(8), pf.with_timeout(5))
        # A loaded machine may find all 8 slots busy now and then: those slots are canceled
        # (counted, never sent); every other one went over one of at most 8 connections.
        c = r.counts
        assert c.scheduled == 1000 and c.failed == 0 and c.succeeded + c.canceled == 1000, (c, r.errors)
        assert server.requests == c.succeeded > 8 * 8  # connections carried many requests each
        assert 1 <= server.accepted <= 8
        assert r.target_counters["connections_opened"] == server.accepted
    assert fds_back_to(fd_baseline) <= fd_baseline


def test_a_capped_pool_queues_calls_for_its_connections():
    def slowish(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        while server.read_request(conn, buf):
            time.sleep(0.005)
            conn.sendall(OK)

    with RawServer(slowish) as server:
        target = resolve("http", {"url": server.url, "connections": "2"})
        r = pf.work(400, 0.5, target, pf.with_overtime(50), pf.with_timeout(5))
        c = r.counts  # more than 2 in flight: they waited for a connection, none opened a third
        assert c.failed == 0 and c.succeeded + c.canceled == 200 and c.succeeded > 50, (c, r.errors)
        assert server.accepted <= 2 and "wait" in r.phases


def test_chunked_and_large_bodies_are_read_whole(fd_baseline):
    def chunked(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        while server.read_request(conn, buf):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.002)  # the rest in a later segment
            conn.sendall(b"6\r\n world\r\n0\r\n\r\n")

    big = b"x" * (4 << 20)
    large = serve_each(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
    for handler, rps in ((chunked, 400), (large, 40)):
        with RawServer(handler) as server:
            target = resolve("http", {"url": server.url})
            r = pf.work(rps, 0.5, target, pf.with_timeout(10))
            assert r.counts.succeeded == rps / 2 and not r.errors, (r.counts, r.errors)
            assert server.accepted <= r.counts.succeeded
    assert fds_back_to(fd_baseline) <= fd_baseline


def test_a_body_that_ends_with_the_connection_and_head_requests():
    eof = serve_each(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", close=True)
    with RawServer(eof) as server:
        r = pf.work(200, 0.25, resolve("http", {"url": server.url}), pf.with_timeout(5))
        assert r.counts.succeeded == 50 and server.accepted == 50, (r.counts, r.errors)
    head = serve_each(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")  # HEAD: no body follows
    with RawServer(head) as server:
        r = pf.work(100, 0.5, resolve("http", {"url": server.url, "method": "HEAD"}), pf.with_timeout(5))
        assert r.counts.succeeded == 50 and server.accepted <= 2, (r.counts, r.errors, server.accepted)


def test_server_closing_after_each_response_is_reconnected(fd_baseline):
    polite = serve_each(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", close=True)
    # Closes without saying so: a reused connection may be dead when the next request goes out;
    # that request is sent again on a new connection, never counted as failed.
    rude = serve_each(OK, close=True)
    for handler in (polite, rude):
        with RawServer(handler) as server:
            r = pf.work(400, 0.5, resolve("http", {"url": server.url}), pf.with_timeout(5))
            assert r.counts.succeeded == 200 and not r.errors, (r.counts, r.errors)
            assert server.requests == 200 and server.accepted == 200
    assert fds_back_to(fd_baseline) <= fd_baseline


def test_reset_mid_response_is_counted_as_reset(fd_baseline):
    def reset(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        if server.read_request(conn, buf):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
            time.sleep(0.01)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

    with RawServer(reset) as server:
        r = pf.work(200, 0.25, resolve("http", {"url": server.url}), pf.with_timeout(5))
    assert r.counts.scheduled == 50 and r.errors == {"ConnectionReset": 50}, (r.counts, r.errors)
    assert fds_back_to(fd_baseline) <= fd_baseline


def test_slow_server_past_the_timeout_is_timeout_and_its_connections_closed(fd_baseline):
    release = threading.Event()

    def slow(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        if server.read_request(conn, buf):
            release.wait(10)
            conn.sendall(OK)

    with RawServer(slow) as server:
        t0 = time.monotonic()
        r = pf.work(80, 0.25, resolve("http", {"url": server.url}), pf.with_timeout(0.3))
        took = time.monotonic() - t0
        release.set()
    assert r.counts.scheduled == 20 and r.errors == {"Timeout": 20}, (r.counts, r.errors)
    assert took < 3
    assert fds_back_to(fd_baseline) <= fd_baseline


def test_malformed_responses_are_bad_response(fd_baseline):
    for response in (
        b"HTTQ/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nok",
    ):
        with RawServer(serve_each(response)) as server:
            r = pf.work(80, 0.25, resolve("http", {"url": server.url}), pf.with_timeout(5))
        assert r.counts.scheduled == 20 and r.errors == {"BadResponse": 20}, (response, r.counts, r.errors)
    assert fds_back_to(fd_baseline) <= fd_baseline


@pytest.mark.parametrize("engine", ["lean", "aiohttp"])
def test_both_engines_count_status_and_refused_connections_alike(engine):
    with RawServer(serve_each(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")) as server:
        r = pf.work(80, 0.25, resolve("http", {"url": server.url, "engine": engine}), pf.with_timeout(5))
        assert r.errors == {"HTTP 503": 20}
    with RawServer(serve_each(OK)) as gone:
        url = gone.url
    r = pf.work(80, 0.25, resolve("http", {"url": url, "engine": engine}), pf.with_timeout(5))
    assert r.errors == {"ConnectRefused": 20}, r.errors


def test_connect_timeout_is_its_own_kind():
    # A listening socket whose backlog is full leaves new connects unanswered (SYNs dropped).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
            fillers.append(s)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        target = resolve("http", {"url": url, "connect_timeout": "0.2"})
        r = pf.work(40, 0.25, target, pf.with_timeout(5))
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert r.counts.failed == 10 and r.errors == {"ConnectTimeout": 10}, r.errors


def test_a_reused_connection_closed_before_answering_is_retried_once_on_a_new_one():
    dropped = []

    def one_then_drop(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        if server.read_request(conn, buf):
            conn.sendall(OK)
        if server.read_request(conn, buf):
            dropped.append(1)  # read the next request, then close without a word

    with RawServer(one_then_drop) as server:
        r = pf.work(40, 0.5, resolve("http", {"url": server.url}), pf.with_timeout(5))
        assert r.counts.succeeded == 20 and not r.errors, (r.counts, r.errors)
        assert len(dropped) >= 10  # the retry path really ran
        assert server.accepted == 1 + len(dropped)  # each retry on a connection of its own

    def never_answer(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn, bytearray())

    with RawServer(never_answer) as server:  # a fresh connection is not retried
        r = pf.work(40, 0.25, resolve("http", {"url": server.url}), pf.with_timeout(5))
    assert r.errors == {"ConnectionClosed": 10}, r.errors


def test_tls_with_keep_alive_and_certificate_checks(self_signed, fd_baseline):
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(*self_signed)
    with RawServer(serve_each(OK), tls=server_tls) as server:
        assert server.url.startswith("https://")
        target = resolve("http", {"url": server.url, "verify": "false"})
        r = pf.work(100, 1.0, target, pf.with_overtime(20), pf.with_timeout(5))
        # A loaded machine may find all 20 slots busy with handshakes now and then: those slots
        # are canceled (counted, never sent); every other one succeeded over at most 20 connections.
        c = r.counts
        assert c.failed == 0 and c.succeeded + c.canceled == 100 and c.succeeded > 50, (c, r.errors)
        assert server.accepted <= 20
        # Verified by default: a self-signed certificate is refused.
        r = pf.work(40, 0.25, resolve("http", {"url": server.url}), pf.with_timeout(5))
        assert r.errors == {"TLSError": 10}, r.errors
    assert fds_back_to(fd_baseline) <= fd_baseline


def slow_each(delay: float) -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        while server.read_request(conn, buf):
            time.sleep(delay)
            conn.sendall(OK)

    return handler


def tls_server(self_signed) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    return context


def test_at_most_connecting_connections_open_at_once_and_calls_wait_for_them(self_signed):
    """A cold burst over TLS: without a bound every due call opened its own connection."""
    with RawServer(slow_each(0.002), tls=tls_server(self_signed)) as server:
        target = resolve("http", {"url": server.url, "verify": "false", "connecting": "3"})
        r = pf.work(2000, 0.5, target, pf.with_timeout(10))
        engine = target.engine or target  # closed at the end: the counters stay in the report
        del engine
        assert r.counts.succeeded == 1000 and not r.errors, (r.counts, r.errors)
    opened = r.target_counters["connections_opened"]
    assert opened == server.accepted and opened < 200
    assert r.phases["wait"].total > 0  # calls waited for a connection rather than each open one
    assert r.phases["connect"].total == r.phases["tls"].total == opened
    assert r.phases["ttfb"].total == r.phases["receive"].total == 1000


def test_the_connecting_bound_is_never_exceeded():
    import asyncio

    from pusher_farm.targets.engine import HttpEngine

    async def main(url):
        engine = HttpEngine(url, connecting=4)
        ended = []
        for i in range(300):
            engine.start(i, lambda token, status, error, *marks: ended.append((status, error)))
            assert engine.connecting <= 4
        while len(ended) < 300:
            await asyncio.sleep(0.01)
        await engine.aclose()
        return engine, ended

    with RawServer(slow_each(0.001)) as server:
        engine, ended = asyncio.run(main(server.url))
    assert engine.connecting_peak == 4 and set(ended) == {(200, None)}
    assert server.accepted == engine.opened <= 300


def test_warm_opens_connections_before_the_run_and_they_serve_it(self_signed):
    with RawServer(serve_each(OK), tls=tls_server(self_signed)) as server:
        target = resolve("http", {"url": server.url, "verify": "false", "warm": "6"})
        r = pf.work(200, 0.5, target, pf.with_overtime(6), pf.with_timeout(5))
        assert r.counts.succeeded + r.counts.canceled == 100 and not r.errors, (r.counts, r.errors)
        assert server.accepted == 6
    assert r.target_counters["connections_warmed"] == r.target_counters["connections_opened"] == 6
    # Opened before the run: no call of the run waited or connected.
    assert "connect" not in r.phases and "wait" not in r.phases
    assert r.phases["ttfb"].total == r.counts.succeeded


def test_a_call_that_gives_up_while_its_connection_opens_leaves_it_to_the_pool():
    import asyncio

    from pusher_farm.targets.engine import HttpEngine

    async def main(url):
        engine = HttpEngine(url)
        ended = []
        handle = engine.start("first", lambda token, status, error, *marks: ended.append((token, error)))
        handle.cancel()  # still connecting
        assert ended == [("first", "Cancelled")]
        while engine.connecting:
            await asyncio.sleep(0.005)
        assert len(engine._idle) == 1  # the handshake was not thrown away
        engine.start("second", lambda token, status, error, *marks: ended.append((token, status)))
        while len(ended) < 2:
            await asyncio.sleep(0.005)
        await engine.aclose()
        return engine, ended

    with RawServer(serve_each(OK)) as server:
        engine, ended = asyncio.run(main(server.url))
    assert ended[1] == ("second", 200) and engine.opened == 1 and server.accepted == 1


@pytest.mark.parametrize("resume", [True, False])
def test_tls_sessions_are_resumed_on_reconnects(self_signed, resume):
    every_third_closes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def handler(conn: socket.socket, server: RawServer) -> None:
        buf = bytearray()
        for _ in range(3):
            if not server.read_request(conn, buf):
                return
            conn.sendall(every_third_closes)

    with RawServer(handler, tls=tls_server(self_signed)) as server:
        # One call at a time, so each new connection follows the last (TLS 1.3 tickets are
        # each good once: a connection resumes with the ticket its predecessor got).
        params = {"url": server.url, "verify": "false", "resume": str(resume).lower()}
        r = pf.work(40, 0.75, resolve("http", params), pf.with_overtime(1), pf.with_timeout(5))
        assert r.counts.succeeded + r.counts.canceled == 30 and not r.errors, (r.counts, r.errors)
    c = r.target_counters
    opened = c["connections_opened"]
    assert opened == -(-r.counts.succeeded // 3)
    if resume:
        assert c["tls_full_handshakes"] == 1 and c["tls_resumed_handshakes"] == opened - 1
    else:
        assert c["tls_full_handshakes"] == opened and c.get("tls_resumed_handshakes", 0) == 0


def test_checks_fail_calls_by_what_they_found():
    body_204 = b"HTTP/1.1 204 No Content\r\n\r\n"
    wrong = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\noops!"
    with RawServer(serve_each(wrong)) as server:
        r = pf.work(80, 0.25, resolve("http", {"url": server.url, "expect_body": "ok"}))
        assert r.errors == {"Check body": 20}, r.errors
        r = pf.work(80, 0.25, resolve("http", {"url": server.url, "expect_header": ["Content-Type: text/plain"]}))
        assert r.errors == {"Check header Content-Type": 20}, r.errors
        r = pf.work(80, 0.25, resolve("http", {"url": server.url, "expect_status": "201"}))
        assert r.errors == {"Check status 200": 20}, r.errors
        seen = []

        def custom(response):
            seen.append(response)
            return response.header("content-type") == "text/html" and response.body == b"oops!"

        r = pf.work(80, 0.25, resolve("http", {"url": server.url, "check": custom}))
        assert r.counts.succeeded == 20 and seen[0].status == 200
    with RawServer(serve_each(body_204)) as server:
        r = pf.work(80, 0.25, resolve("http", {"url": server.url, "expect_status": "204"}))
        assert r.counts.succeeded == 20 and not r.errors, r.errors
