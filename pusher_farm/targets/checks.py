"""Response checks for the ``http`` target: status, body, headers, or a function of your own.

A response that fails a check fails its call, counted under ``Check <what>``: ``Check status
201``, ``Check body``, ``Check header Content-Type``, or what a custom check says. Without an
expected status any 2xx passes and others fail as ``HTTP <status>``. A check asks for what it
needs and nothing more: headers are parsed and bodies kept only when a check reads them, so
the fast path (no checks) stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Checks", "Response", "parse_statuses"]


@dataclass(frozen=True)
class Response:
    """What a custom check gets: the status, the headers (as sent, in order) and the body
    (empty unless a check reads it)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


#: a custom check: True or None passes; False fails as ``Check``; a text fails as ``Check <text>``
CustomCheck = Callable[[Response], Any]


def parse_statuses(text: str | Iterable[int]) -> frozenset[int]:
    """'200,204' or '200-299,304' (or codes from Python) → the statuses a response may have."""
    if not isinstance(text, str):
        text = ",".join(str(code) for code in (text if isinstance(text, Iterable) else [text]))
    out: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise ValueError(f"cannot read status {part!r}: give codes or ranges, e.g. 200,204 or 200-299") from None
        if not 100 <= first <= last <= 599:
            raise ValueError(f"status {part!r} is not within 100-599")
        out.update(range(first, last + 1))
    return frozenset(out)


class Checks:
    """What a response must be to pass (see the module docstring)."""

    def __init__(
        self,
        *,
        statuses: frozenset[int] | None = None,
        body: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        custom: CustomCheck | None = None,
    ) -> None:
        self.statuses = statuses
        self.body = None if body is None else body.encode()
        self.headers = tuple((name.strip(), value.strip()) for name, value in headers)
        self.custom = custom
        self.needs_headers = bool(self.headers) or custom is not None
        self.needs_body = self.body is not None or custom is not None

    @property
    def plain(self) -> bool:
        """Only the default status check: nothing to parse beyond the status line."""
        return self.statuses is None and not self.needs_headers and not self.needs_body

    def verdict(self, status: int, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> str | None:
        """None when the response passes; else the error kind its call fails under."""
        if self.statuses is None:
            if not 200 <= status < 300:
                return f"HTTP {status}"
        elif status not in self.statuses:
            return f"Check status {status}"
        if self.body is not None and self.body not in body:
            return "Check body"
        if self.headers:
            response = Response(status, headers)
            for name, value in self.headers:
                if response.header(name) != value:
                    return f"Check header {name}"
        if self.custom is not None:
            try:
                result = self.custom(Response(status, headers, body))
            except Exception as exc:  # a check that breaks fails its call, by the exception's name
                return f"Check {type(exc).__name__}"
            if result is False:
                return "Check"
            if isinstance(result, str):
                return f"Check {result}"[:200]
        return None
