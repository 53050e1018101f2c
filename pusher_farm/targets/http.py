"""The ``http`` target: one fixed request per call, on one of two engines.

``engine=lean`` (the default) is ``pusher_farm.targets.engine``: asyncio Protocols and the
httptools parser, request bytes built once, no task per call; the fastest way to load an
HTTP/1.1 server from Python. ``engine=aiohttp`` goes through an aiohttp session: slower (about a
quarter of the rate per core), but it follows redirects, keeps cookies and honours proxy
settings from the environment.

Either way a complete response outside 2xx fails the call with kind ``HTTP <status>``, the body
is read in full (so service time covers the whole exchange), and transport failures are counted
by kind: ``ConnectRefused``, ``ConnectTimeout``, ``ConnectError``, ``TLSError``,
``ConnectionReset``, ``ConnectionClosed``, ``BadResponse``; a call past ``--timeout`` is
``Timeout``. Connections are kept alive and pooled: the pool grows to the number of calls in
flight, so ``--overtime`` is its size (``--param connections=N`` caps it lower; calls then wait
for a connection, and that wait is part of their latency).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pusher_farm.errors import TargetError
from pusher_farm.targets import Param, Plugin
from pusher_farm.targets import engine as lean

if TYPE_CHECKING:  # targets sit below the core: they import none of it at run time
    import aiohttp

    from pusher_farm.core.executor import Context

ENGINES = ("lean", "aiohttp")
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text


def _method(text: str) -> str:
    m = text.upper()
    if m not in METHODS:
        raise ValueError(f"unknown method {text!r} (use one of {', '.join(sorted(METHODS))})")
    return m


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header {text!r} must look like 'Name: value'")
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"header {text!r} holds a line break")
    return name.strip(), value.strip()


def _engine(text: str) -> str:
    if text not in ENGINES:
        raise ValueError(f"unknown engine {text!r} (use lean or aiohttp)")
    return text


def _count(text: str) -> int:
    n = int(text)
    if n < 0:
        raise ValueError("must be >= 0 (0: as many as calls in flight)")
    return n


def _seconds(text: str) -> float:
    s = float(text)
    if not s > 0:
        raise ValueError("must be a positive number of seconds")
    return s


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true or false")


class LeanHttpTarget:
    """The ``http`` target on the lean engine: a callback target (no task per call)."""

    def __init__(self, url: str, method: str, headers: list[tuple[str, str]], body: bytes | None, **options: Any):
        lean.build_request(method, url, headers, body)  # fails now, not on the first call
        self.url = url
        self.method = method
        self._args = (url, method, headers, body)
        self._options = options
        self.engine: lean.HttpEngine | None = None
        self.__pusher_name__ = f"http {method} {url}"

    def __pusher_start__(self, ctx: Any, done: lean.Done) -> Any:
        engine = self.engine
        if engine is None:
            engine = self.engine = lean.HttpEngine(*self._args, **self._options)
        return engine.start(ctx, done)

    async def __call__(self, ctx: Context) -> int:
        """One request awaited (for callers other than the executor, which uses the callback)."""
        future: asyncio.Future[tuple[int | None, str | None]] = asyncio.get_running_loop().create_future()

        def done(_: Any, status: int | None, error: str | None) -> None:
            if not future.done():
                future.set_result((status, error))

        handle = self.__pusher_start__(ctx, done)
        try:
            status, error = await future
        except asyncio.CancelledError:
            handle.cancel()
            raise
        if error is not None:
            raise TargetError(error)
        assert status is not None
        return status

    async def aclose(self) -> None:
        if self.engine is not None:
            await self.engine.aclose()
        self.engine = None


class AiohttpTarget:
    """The ``http`` target on aiohttp: one session per run, opened on the first call."""

    def __init__(self, url: str, method: str, headers: list[tuple[str, str]], body: bytes | None, **options: Any):
        self.url = url
        self.method = method
        self.headers = dict(headers)
        self.body = body
        self.connections = options["connections"]
        self.connect_timeout = options["connect_timeout"]
        self.verify = options["verify"]
        self.__pusher_name__ = f"http {method} {url}"
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self.connections, ttl_dns_cache=300, ssl=self.verify)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                # Proxy settings from the environment, only when there are any: aiohttp's
                # trust_env costs two thread-pool hops per request (measured: 4k req/s -> 11k).
                trust_env=_proxy_in_env(),
            )
            self._loop = loop
        return self._session

    async def __call__(self, ctx: Context) -> int:
        import aiohttp

        session = self._open()
        try:
            async with session.request(self.method, self.url, data=self.body) as resp:
                await resp.read()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise TargetError(_connect_kind(exc.os_error), str(exc)) from None
        except aiohttp.ServerTimeoutError:
            raise TargetError(lean.CONNECT_TIMEOUT) from None
        except aiohttp.ServerDisconnectedError:
            raise TargetError(lean.CONNECTION_CLOSED) from None
        except aiohttp.ClientPayloadError as exc:
            raise TargetError(lean.CONNECTION_CLOSED, str(exc)) from None
        except aiohttp.ClientResponseError as exc:
            raise TargetError(lean.BAD_RESPONSE, str(exc)) from None
        except aiohttp.ClientOSError as exc:
            raise TargetError(
                lean.CONNECTION_RESET if isinstance(exc, ConnectionResetError) else lean.CONNECT_ERROR, str(exc)
            ) from None
        if not 200 <= status < 300:
            raise TargetError(f"HTTP {status}")
        return status

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _proxy_in_env() -> bool:
    return any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k in os.environ)


def _connect_kind(error: OSError) -> str:
    import ssl

    if isinstance(error, ConnectionRefusedError):
        return lean.CONNECT_REFUSED
    if isinstance(error, ssl.SSLError):
        return lean.TLS_ERROR
    if isinstance(error, TimeoutError):
        return lean.CONNECT_TIMEOUT
    return lean.CONNECT_ERROR


def make_http(
    url: str,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: str | None = None,
    engine: str = "lean",
    connections: int = 0,
    connect_timeout: float = 5.0,
    verify: bool = True,
) -> LeanHttpTarget | AiohttpTarget:
    """The ``http`` target on ``engine`` (see the module docstring)."""
    cls = LeanHttpTarget if engine == "lean" else AiohttpTarget
    data = body.encode() if body is not None else None
    return cls(
        url, method, list(headers or []), data, connections=connections, connect_timeout=connect_timeout, verify=verify
    )


HTTP = Plugin(
    "http",
    make_http,
    {
        "url": Param(_url, help="the URL to request (--url URL)", required=True),
        "method": Param(_method, "GET", "HTTP method"),
        "headers": Param(_header, [], "a header 'Name: value' (repeatable)", multiple=True),
        "body": Param(str, None, "request body"),
        "engine": Param(_engine, "lean", "lean (fast HTTP/1.1) or aiohttp (redirects, cookies, proxies)"),
        "connections": Param(_count, 0, "most connections (0: one per call in flight, i.e. --overtime)"),
        "connect_timeout": Param(_seconds, 5.0, "seconds a connect may take"),
        "verify": Param(_flag, True, "check the server's TLS certificate (false for self-signed ones)"),
    },
    help="one HTTP request per call over pooled keep-alive connections (engine: lean or aiohttp)",
)
