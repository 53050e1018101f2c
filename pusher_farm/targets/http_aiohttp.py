"""The ``http`` target on aiohttp: redirects, cookies and proxies, at about a tenth of the rate.

One session per run, opened on the first call. Its connector opens at most ``connecting``
connections at once (aiohttp itself has no such bound: on a cold start over TLS it opened one
per call and timed out on its own handshakes). The phases each call measures: ``connect``
(TCP and TLS, when the call opened a connection), ``ttfb`` (to the response's headers) and
``receive`` (the body).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from typing import TYPE_CHECKING, Any

from pusher_farm.errors import TargetError
from pusher_farm.targets import engine as lean
from pusher_farm.targets.checks import Checks
from pusher_farm.targets.http_template import RequestTemplate, call_name

if TYPE_CHECKING:
    import aiohttp

    from pusher_farm.core.calls import Context

__all__ = ["AiohttpTarget"]

_clock = time.monotonic
#: seconds the current call spent opening a connection (set by the connector, in its task)
_opening: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("opening", default=None)


def _bounded_connector(connecting: int, counts: dict[str, int], **kw: Any) -> aiohttp.TCPConnector:
    import aiohttp

    class Bounded(aiohttp.TCPConnector):
        """A TCPConnector that opens at most ``connecting`` connections at once."""

        def __init__(self) -> None:
            super().__init__(**kw)
            self._gate = asyncio.Semaphore(connecting)

        async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
            asked = _clock()
            async with self._gate:
                began = _clock()
                counts["connections_opened"] += 1
                proto = await super()._create_connection(req, traces, timeout)
                spent = _opening.get()
                if spent is not None:
                    spent += [began - asked, _clock() - began]  # waiting for the gate, connecting
                return proto

    return Bounded()


class AiohttpTarget:
    """The ``http`` target on aiohttp (see the module docstring)."""

    def __init__(self, url: str, method: str, headers: list[tuple[str, str]], body: bytes | None, **options: Any):
        self.url = url
        self.method = method
        self.headers = dict(headers)
        self.body = body
        self.connections = options["connections"]
        self.connecting = options["connecting"]
        self.connect_timeout = options["connect_timeout"]
        self.verify = options["verify"]
        self.checks: Checks = options["checks"]
        #: placeholders filled from each call's item (None: a fixed request)
        self.template: RequestTemplate | None = options.get("template")
        self.counts = {"connections_opened": 0}
        self.__pusher_name__ = f"http {method} {url}"
        self.call_name = call_name(method, url)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = _bounded_connector(
                self.connecting, self.counts, limit=self.connections, ttl_dns_cache=300, ssl=self.verify
            )
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

    def __pusher_counters__(self) -> dict[str, int]:
        return dict(self.counts)

    async def __call__(self, ctx: Context) -> int:
        import aiohttp

        ctx.name = self.call_name
        session = self._open()
        spent: list[float] = []
        _opening.set(spent)
        began = _clock()
        url, body, headers = self.url, self.body, None
        if self.template is not None and ctx.item is not None:
            url, filled, body = self.template.fill(ctx.item)
            headers = dict(filled)
        try:
            async with session.request(self.method, url, data=body, headers=headers) as resp:
                headed = _clock()
                checks = self.checks
                body = await resp.read()
                status = resp.status
                error = (
                    checks.verdict(status)
                    if checks.plain
                    else checks.verdict(status, tuple(resp.headers.items()), body[: 1 << 20])
                )
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
        waited, opening = (spent[0], spent[1]) if spent else (0.0, 0.0)
        try:
            ctx.marks = (began + waited + opening, headed)  # sent (near enough), headers in
            if spent:
                ctx.phases = (("wait", waited), ("connect", opening))
        except AttributeError:
            pass
        if error is not None:
            raise TargetError(error)
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
