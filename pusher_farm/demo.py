"""An HTTP(S) server for the demo and the tests: runs on 127.0.0.1 in a thread of its own.

``GET /`` answers 200 after a short, varied delay; ``GET /?fail=P`` answers 503 with
probability P; ``GET /status/N`` answers N. Its own thread and event loop keep its work apart
from the generator's.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from pusher_farm.errors import InvalidOption


async def _index(request: web.Request) -> web.Response:
    delay_ms = float(request.query.get("ms", "0") or 0)
    if delay_ms > 0:
        await asyncio.sleep(random.uniform(0.5, 1.5) * delay_ms / 1000)
    if random.random() < float(request.query.get("fail", "0") or 0):
        return web.Response(status=503, text="busy\n")
    return web.Response(text="ok\n")


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status\n")


def self_signed() -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (made with the
    openssl command; the files are removed once loaded). Clients load it with verify=false."""
    if shutil.which("openssl") is None:
        raise InvalidOption("--tls needs the openssl command (apt-get install openssl)")
    with tempfile.TemporaryDirectory(prefix="pusher-farm-demo-") as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
             "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    return context


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _index)
    app.router.add_get("/status/{code:\\d{3}}", _status)
    return app


class DemoServer:
    """``with DemoServer() as server: server.url`` — a local HTTP server in a thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        app: Callable[[], web.Application] = make_app,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/"

    def start(self) -> DemoServer:
        self._thread = threading.Thread(target=self._serve, name="demo-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            runner = self._runner = web.AppRunner(self.app(), access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self.tls)
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None and server.sockets
            self.port = server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()
