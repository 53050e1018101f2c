"""The http target's TLS client side: its context, and the sessions it resumes.

The loop's SSL support (asyncio's and uvloop's alike) takes a context, never a session, so the
context itself offers a kept session to every connection it wraps. A TLS 1.3 server sends a
ticket after each handshake and each ticket is good for one resumption, so they are queued and
used once; a TLS 1.2 session serves every connection.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["ClientTls"]

#: TLS 1.3 tickets kept for new connections
_TICKETS = 64


class _Resuming(ssl.SSLContext):
    """An SSL context that offers a session from ``sessions`` on every new connection."""

    sessions: Callable[[], ssl.SSLSession | None] | None = None

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False, server_hostname: Any = None,
                 session: Any = None) -> ssl.SSLObject:  # fmt: skip
        if session is None and self.sessions is not None:
            session = self.sessions()
        return super().wrap_bio(incoming, outgoing, server_side=server_side, server_hostname=server_hostname,
                                session=session)  # fmt: skip


class ClientTls:
    """The context for ``https://`` connections (certificates checked unless ``verify`` is
    false), the sessions kept to resume (unless ``resume`` is false), and the handshakes
    counted: ``full`` and ``resumed``."""

    def __init__(self, *, verify: bool = True, resume: bool = True) -> None:
        self.context = _Resuming(ssl.PROTOCOL_TLS_CLIENT)
        self.context.load_default_certs()
        if not verify:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        self.resume = resume
        if resume:
            self.context.sessions = self._next
        self.full = self.resumed = 0
        self._tickets: deque[ssl.SSLSession] = deque(maxlen=_TICKETS)
        self._session: ssl.SSLSession | None = None

    def handshaken(self, obj: ssl.SSLObject | None) -> None:
        """A connection finished its handshake: count it, in full or resumed."""
        if obj is not None and obj.session_reused:
            self.resumed += 1
        else:
            self.full += 1

    def keep(self, obj: ssl.SSLObject | None) -> None:
        """Keep the session of a new connection for the next one to resume (a TLS 1.3 ticket
        comes after the handshake, so the caller waits for its first response)."""
        session = None if obj is None or not self.resume else obj.session
        if session is None:
            return
        if obj is not None and obj.version() == "TLSv1.3":
            if session.has_ticket:
                self._tickets.append(session)
        else:
            self._session = session

    def _next(self) -> ssl.SSLSession | None:
        if self._tickets:
            return self._tickets.popleft()
        return self._session
