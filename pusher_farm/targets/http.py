"""The ``http`` target: one request per call, on one of two engines.

With a feed, ``{field}`` placeholders in the URL, headers and body are filled from each call's
work item (``http_template``); otherwise every call sends the same request.

``engine=lean`` (the default) is ``pusher_farm.targets.engine``: asyncio Protocols and the
httptools parser, request bytes built once, no task per call; the fastest way to load an
HTTP/1.1 server from Python. ``engine=aiohttp`` (``http_aiohttp``) goes through an aiohttp
session: slower (about a tenth of the rate per core), but it follows redirects, keeps cookies
and honours proxy settings from the environment.

Either way a complete response outside 2xx fails the call with kind ``HTTP <status>`` (or as
the response checks say: ``expect_status``, ``expect_body``, ``expect_header``, or a function of
your own, ``check``), and transport failures are counted by kind: ``ConnectRefused``,
``ConnectTimeout``, ``ConnectError``, ``TLSError``, ``ConnectionReset``, ``ConnectionClosed``,
``BadResponse``; a call past ``--timeout`` is ``Timeout``. Connections are kept alive and
pooled; at most ``connecting`` are being opened at once (8 by default: no self-made storm of
TLS handshakes on a cold start), ``connections`` caps the pool (0: one per call in flight, so
``--overtime`` is its size), and a call that waits for a connection counts the wait in its
latency and as its ``wait`` phase. Each call's phases (wait, connect, tls, ttfb, receive)
go into the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pusher_farm.errors import InvalidOption, TargetError
from pusher_farm.targets import Param, Plugin
from pusher_farm.targets import engine as lean
from pusher_farm.targets.checks import Checks, CustomCheck, parse_statuses
from pusher_farm.targets.http_template import RequestTemplate, call_name, has_placeholders

if TYPE_CHECKING:  # targets sit below the core: they import none of it at run time
    from pusher_farm.core.calls import Context

__all__ = ["HTTP", "LeanHttpTarget", "make_http"]

ENGINES = ("lean", "aiohttp")
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _url(text: str) -> str:
    text = str(text)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text


def _method(text: str) -> str:
    m = str(text).upper()
    if m not in METHODS:
        raise ValueError(f"unknown method {text!r} (use one of {', '.join(sorted(METHODS))})")
    return m


def _header(text: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(text, tuple) and len(text) == 2:
        text = f"{text[0]}: {text[1]}"
    name, sep, value = str(text).partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header {text!r} must look like 'Name: value'")
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"header {text!r} holds a line break")
    return name.strip(), value.strip()


def _engine(text: str) -> str:
    text = str(text)
    if text not in ENGINES:
        raise ValueError(f"unknown engine {text!r} (use lean or aiohttp)")
    return text


def _whole(text: Any) -> int:
    if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _count(text: str) -> int:
    n = _whole(text)
    if n < 0:
        raise ValueError("must be >= 0 (0: as many as calls in flight)")
    return n


def _positive(text: str) -> int:
    n = _whole(text)
    if not 1 <= n <= 100_000:
        raise ValueError("must be a whole number from 1 to 100000")
    return n


def _warm(text: str) -> int:
    n = _whole(text)
    if not 0 <= n <= 100_000:
        raise ValueError("must be a whole number from 0 to 100000")
    return n


def _seconds(text: str) -> float:
    s = float(text)
    if not s > 0:
        raise ValueError("must be a positive number of seconds")
    return s


def _flag(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def _check(value: Any) -> CustomCheck:
    if isinstance(value, str) or not callable(value):
        raise ValueError("a check is a function of the response (Python API only)")
    return value


class LeanHttpTarget:
    """The ``http`` target on the lean engine: a callback target (no task per call)."""

    def __init__(
        self,
        url: str,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        *,
        warm: int = 0,
        template: RequestTemplate | None = None,
        **options: Any,
    ) -> None:
        lean.build_request(method, url, headers, body)  # fails now, not on the first call
        self.url = url
        self.method = method
        self.warm = warm
        #: placeholders filled from each call's item (None: one fixed request)
        self.template = template
        if template is not None:
            options["templated"] = True
        self._args = (url, method, headers, body)
        self._options = options
        self.engine: lean.HttpEngine | None = None
        self.__pusher_name__ = f"http {method} {url}"
        #: what each call is named in the report's rows by name: the method and the URL's
        #: template, never a filled-in URL (500 ids are one row)
        self.call_name = call_name(method, url)

    def _engine(self) -> lean.HttpEngine:
        if self.engine is None:
            self.engine = lean.HttpEngine(*self._args, **self._options)
        return self.engine

    def __pusher_start__(self, ctx: Any, done: lean.Done) -> Any:
        engine = self.engine
        if engine is None:
            engine = self._engine()
        ctx.name = self.call_name
        if self.template is not None and ctx.item is not None:
            url, headers, body = self.template.fill(ctx.item)
            ctx.payload = lean.build_request(self.method, url, headers, body)
        return engine.start(ctx, done)

    async def __pusher_warm__(self, until: float | None) -> None:
        """Open the ``warm`` connections before the run (by ``until``, on time.monotonic)."""
        if self.warm:
            await self._engine().warm(self.warm, until)

    def __pusher_counters__(self) -> dict[str, int]:
        return {} if self.engine is None else self.engine.counters()

    async def __call__(self, ctx: Context) -> int:
        """One request awaited (for callers other than the executor, which uses the callback)."""
        future: asyncio.Future[tuple[int | None, str | None]] = asyncio.get_running_loop().create_future()

        def done(_: Any, status: int | None, error: str | None, sent: float = 0.0, first: float = 0.0) -> None:
            if first:
                ctx.marks = (sent or ctx.started, first)
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


def make_http(
    url: str,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: str | None = None,
    engine: str = "lean",
    connections: int = 0,
    connecting: int = lean.DEFAULT_CONNECTING,
    connect_timeout: float = 5.0,
    verify: bool = True,
    warm: int = 0,
    resume: bool = True,
    phases: bool = True,
    expect_status: frozenset[int] | None = None,
    expect_body: str | None = None,
    expect_header: list[tuple[str, str]] | None = None,
    check: CustomCheck | None = None,
) -> Any:
    """The ``http`` target on ``engine`` (see the module docstring)."""
    checks = Checks(statuses=expect_status, body=expect_body, headers=expect_header or (), custom=check)
    data = body.encode() if body is not None else None
    headers = list(headers or [])
    template = RequestTemplate(url, headers, body) if has_placeholders(url, body, *(v for _, v in headers)) else None
    options = {
        "connections": connections,
        "connecting": connecting,
        "connect_timeout": connect_timeout,
        "verify": verify,
        "checks": checks,
        "template": template,
    }
    if engine == "aiohttp":
        from pusher_farm.targets.http_aiohttp import AiohttpTarget

        if warm:
            raise InvalidOption("warm needs the lean engine (aiohttp opens connections only for requests)")
        return AiohttpTarget(url, method, headers, data, **options)
    return LeanHttpTarget(url, method, headers, data, warm=warm, resume=resume, phases=phases, **options)


def _needs_feed(params: Mapping[str, Any], has_feed: bool) -> None:
    """``{field}`` placeholders are filled from each call's work item: they need a feed."""
    headers = params.get("headers") or []
    texts = [params.get("url"), params.get("body"), *(str(h).partition(":")[2] for h in headers)]
    if not has_feed and has_placeholders(*texts):
        raise InvalidOption("the url, a header or the body has {field} placeholders: give a feed whose items fill them")


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
        "connecting": Param(_positive, lean.DEFAULT_CONNECTING, "most connections being opened at once"),
        "connect_timeout": Param(_seconds, 5.0, "seconds a connect may take"),
        "verify": Param(_flag, True, "check the server's TLS certificate (false for self-signed ones)"),
        "warm": Param(_warm, 0, "connections to open before the run starts (lean engine)"),
        "resume": Param(_flag, True, "offer the last TLS session on new connections (lean engine)"),
        "phases": Param(_flag, True, "record each call's phases; false: none, for ~4% more top rate (lean engine)"),
        "expect_status": Param(parse_statuses, None, "statuses that pass, e.g. 200,204 or 200-299"),
        "expect_body": Param(str, None, "text the response body must contain"),
        "expect_header": Param(_header, [], "a header 'Name: value' the response must have", multiple=True),
        "check": Param(_check, None, "a function of the response (Python API)"),
    },
    help="one HTTP request per call over pooled keep-alive connections (engine: lean or aiohttp)",
    check=_needs_feed,
)
