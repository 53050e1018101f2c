"""Every error pusher-farm raises on purpose.

    PusherError                   the root: catch this to catch them all
    ├── InvalidRPS                a rate that is not a positive, finite number
    ├── MissingTarget             no target, or one that cannot be called or imported
    ├── WorkerBusy                ``work`` on a worker that is already working
    ├── InvalidOvertime           a negative (or non-integer) cap on calls in flight
    ├── InvalidOption             any other setting that makes no sense (durations, stages, ...)
    ├── TargetError               a target's own failure with a kind to count it by
    └── FarmError                 the distributed part could not do what was asked
        └── ProtocolError         a message on the wire that is not ours or not valid

Each error is a fixed *kind* plus a *reason*: ``str(InvalidRPS("must be positive"))`` reads
``invalid rps: must be positive`` and still matches ``except InvalidRPS``.
"""

from __future__ import annotations

__all__ = [
    "FarmError",
    "error_of_kind",
    "InvalidOption",
    "InvalidOvertime",
    "InvalidRPS",
    "MissingTarget",
    "ProtocolError",
    "PusherError",
    "TargetError",
    "WorkerBusy",
]


class PusherError(Exception):
    """The root of every error pusher-farm raises on purpose."""

    kind = "pusher error"

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(f"{self.kind}: {reason}" if reason else self.kind)


class InvalidRPS(PusherError):
    """A rate that is not a positive, finite number."""

    kind = "invalid rps"


class MissingTarget(PusherError):
    """No target, or one that cannot be called or imported."""

    kind = "missing target"


class WorkerBusy(PusherError):
    """``work`` on a worker that is already working."""

    kind = "worker busy"


class InvalidOvertime(PusherError):
    """A cap on calls in flight that is negative or not a whole number."""

    kind = "invalid overtime"


class InvalidOption(PusherError):
    """Any other setting that makes no sense (durations, stages, parameters, ...)."""

    kind = "invalid option"


class TargetError(PusherError):
    """Raise from a target to fail a call and count it under ``kind`` (e.g. ``"HTTP 503"``).

    Any other exception is counted under its class name.
    """

    kind = "target error"

    def __init__(self, kind: str, reason: str = "") -> None:
        self.kind = kind
        super().__init__(reason)


class FarmError(PusherError):
    """The distributed part could not do what was asked."""

    kind = "farm error"


class ProtocolError(FarmError):
    """A message on the wire that is not ours or not valid."""

    kind = "protocol error"


def error_of_kind(kind: str, reason: str) -> PusherError:
    """The error of our tree whose kind is ``kind`` (an error that crossed the wire as data),
    or a ``FarmError`` for any other kind."""
    for cls in (InvalidRPS, MissingTarget, WorkerBusy, InvalidOvertime, InvalidOption, ProtocolError):
        if cls.kind == kind:
            return cls(reason)
    return FarmError(reason)
