"""The ``http`` target: one request per call through a pooled aiohttp session.

A response with a status outside 2xx fails the call with kind ``HTTP <status>``; a transport
error fails it with the exception's class name (``ClientConnectorError``, ...). The body is
read in full, so service time covers the whole exchange. One session per process, opened on
the first call on the running loop and closed by ``aclose`` when the run ends.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from pusher_farm.errors import TargetError
from pusher_farm.targets import Param, Plugin

if TYPE_CHECKING:  # targets sit below the core: they import none of it at run time
    from pusher_farm.core.executor import Context

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
    return name.strip(), value.strip()


class HttpTarget:
    """Sends one fixed request per call. Pool size follows the number of calls in flight."""

    def __init__(
        self, url: str, method: str = "GET", headers: list[tuple[str, str]] | None = None, body: str | None = None
    ) -> None:
        self.url = url
        self.method = method
        self.headers = dict(headers or [])
        self.body = body.encode() if body is not None else None
        self.__pusher_name__ = f"http {method} {url}"
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self.headers, timeout=aiohttp.ClientTimeout(total=None)
            )
            self._loop = loop
        return self._session

    async def __call__(self, ctx: Context) -> int:
        session = self._open()
        async with session.request(self.method, self.url, data=self.body) as resp:
            await resp.read()
            if not 200 <= resp.status < 300:
                raise TargetError(f"HTTP {resp.status}", resp.reason or "")
            return resp.status

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


HTTP = Plugin(
    "http",
    HttpTarget,
    {
        "url": Param(_url, help="the URL to request (--url URL)", required=True),
        "method": Param(_method, "GET", "HTTP method"),
        "headers": Param(_header, [], "a header 'Name: value' (repeatable)", multiple=True),
        "body": Param(str, None, "request body"),
    },
    help="one HTTP request per call (aiohttp, pooled keep-alive connections)",
)
