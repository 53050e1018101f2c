"""A work item and how its call went: ``Work``, ``Status`` and ``Retry``.

A target that works on items reads its item from ``ctx.item`` and returns a value (success:
the value is the item's result), returns a ``Status``, or raises. ``Status.RETRY`` (returned,
or ``raise Retry("reason")``) has the item tried again, up to ``max_retries`` times; then it
fails with the last reason. ``Status.FAILURE`` or any other exception fails it at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.errors import TargetError

__all__ = ["FAILURE_KIND", "RETRY_KIND", "Retry", "Status", "Work", "is_retry", "plain"]

#: error kind of a call that asked for its item to be tried again (``Retry: <reason>`` with one)
RETRY_KIND = "Retry"
#: error kind of a call that returned ``Status.FAILURE``
FAILURE_KIND = "Failure"


class Status(enum.Enum):
    """How a work item ended (``SUCCESS``, ``FAILURE``), or what its call asks (``RETRY``)."""

    SUCCESS = "success"
    RETRY = "retry"
    FAILURE = "failure"


class Retry(TargetError):
    """Raise from a target to have its item tried again; ``reason`` names why (counted by it)."""

    def __init__(self, reason: str = "") -> None:
        reason = " ".join(str(reason).split())[:120]
        super().__init__(f"{RETRY_KIND}: {reason}" if reason else RETRY_KIND, reason)


def is_retry(kind: str) -> bool:
    """Whether a call's error kind asks for its item to be tried again."""
    return kind == RETRY_KIND or kind.startswith(RETRY_KIND + ": ")


@dataclass(eq=False)
class Work:
    """One work item: ``id`` and ``body`` from the feed; ``status``, ``result`` (what the target
    returned) or ``error`` (the last failure's kind) and ``attempts`` as it goes."""

    id: str
    body: Any = None
    result: Any = None
    status: Status | None = None
    attempts: int = 0
    error: str | None = None
    #: the reasons of the retries so far, in order
    retries: list[str] = field(default_factory=list)
    #: the number a farm's coordinator gave the item when it handed it out
    seq: int | None = None
    #: what its feed needs to acknowledge it (a Redis list entry)
    source: Any = None
    #: bytes its body takes on the wire (a farm's dealer measures it)
    size: int = 64

    def fields(self) -> dict[str, Any]:
        """What ``{name}`` placeholders may name: the body's fields (a map's), ``id`` and
        ``body`` itself."""
        out = dict(self.body) if isinstance(self.body, dict) else {}
        out["id"] = self.id
        out.setdefault("body", self.body)
        return out

    def record(self) -> dict[str, Any]:
        """The item as plain data (a results line, a dead-letter entry, a wire record)."""
        out: dict[str, Any] = {"id": self.id, "status": self.status.value if self.status else None}
        out["attempts"] = self.attempts
        if self.status is Status.SUCCESS:
            out["result"] = plain(self.result)
        else:
            out["error"] = self.error
            out["body"] = plain(self.body)
        if self.retries:
            out["retries"] = list(self.retries)
        return out


#: nesting kept by ``plain`` (deeper parts become their repr, cut short)
_DEPTH = 32


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON/msgpack data: plain values as they are, anything else (and anything
    nested deeper than ``_DEPTH``) as its repr, cut to 200 characters. Never raises."""
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < 1 << 64 else str(value)
    if depth < _DEPTH:
        if isinstance(value, (list, tuple)):
            return [plain(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return repr(value)[:200]
    except Exception:
        return f"<{type(value).__name__}>"
