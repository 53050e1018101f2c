"""A worker's settings and the offers that set them (``hire(ident, target, *offers)``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.schedule import Profile
from pusher_farm.errors import InvalidOption, InvalidOvertime

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_OVERTIME",
    "DEFAULT_TIMEOUT",
    "Config",
    "Offer",
    "with_batch",
    "with_gossips",
    "with_overtime",
    "with_profile",
    "with_spin",
    "with_timeout",
    "with_window",
]

#: Calls in flight allowed by default. pusher allows a million goroutines; a Python process
#: holds far fewer calls usefully, and a thread per in-flight call for plain functions.
DEFAULT_OVERTIME = 10_000
#: Per-call bound by default, so a run always ends; ``with_timeout(None)`` removes it.
DEFAULT_TIMEOUT = 30.0
#: Slots due within this long of a wake-up are launched with it (``with_batch``).
DEFAULT_BATCH = 0.004


@dataclass(frozen=True)
class Config:
    """A public, read-only copy of a worker's settings (``Worker.config()``)."""

    ident: str = ""
    overtime: int = DEFAULT_OVERTIME
    timeout: float | None = DEFAULT_TIMEOUT
    listeners: tuple[Gossiper, ...] = ()
    profile: Profile | None = None
    #: seconds per report window (the time series' resolution)
    window: float = 1.0
    #: seconds of busy-waiting before each slot (0: sleep on the loop's millisecond timers)
    spin: float = 0.0
    #: slots due within this long of a wake-up start with it, up to this early (fewer wake-ups)
    batch: float = DEFAULT_BATCH
    #: gossips one listener may have waiting before further ones are counted as dropped
    gossip_capacity: int = 65_536
    busy: bool = field(default=False, compare=False)


Offer = Callable[[Config], Config]


def with_overtime(limit: int) -> Offer:
    """At most ``limit`` calls in flight; a slot that finds them all busy is canceled.
    0 cancels every slot, as in pusher."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidOvertime(f"must be a whole number, got {limit!r}")
    if limit < 0:
        raise InvalidOvertime(f"must be more or equal zero, got {limit}")
    return lambda c: replace(c, overtime=limit)


def with_gossips(*listeners: Gossiper) -> Offer:
    """Send every slot's events to these listeners (each on its own thread)."""
    for listener in listeners:
        if not (callable(getattr(listener, "listen", None)) and callable(getattr(listener, "stop", None))):
            raise InvalidOption(f"{listener!r} is not a Gossiper: it needs listen(worker, gossips) and stop()")
    return lambda c: replace(c, listeners=c.listeners + tuple(listeners))


def with_timeout(seconds: float | None) -> Offer:
    """Bound each call to ``seconds`` (a call past it fails as ``Timeout``); ``None``: no bound."""
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise InvalidOption(f"timeout must be a number of seconds, got {seconds!r}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise InvalidOption(f"timeout must be positive, got {seconds!r}")
    return lambda c: replace(c, timeout=None if seconds is None else float(seconds))


def with_profile(profile: Profile) -> Offer:
    """Follow this rate profile (``Stages``) instead of the constant rate given to ``work``."""
    if not isinstance(profile, Profile):
        raise InvalidOption(f"a profile must be a Constant or Stages, got {profile!r}")
    return lambda c: replace(c, profile=profile)


def with_window(seconds: float) -> Offer:
    """Report window length (the time series' resolution), 1 s by default."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not (math.isfinite(seconds) and seconds > 0)
    ):
        raise InvalidOption(f"window must be a positive number of seconds, got {seconds!r}")
    return lambda c: replace(c, window=float(seconds))


def with_batch(seconds: float) -> Offer:
    """Launch every slot due within ``seconds`` of a wake-up with it: fewer wake-ups (about a
    third of the CPU per call at a few thousand calls per second with the default 4 ms), at the
    price of starting such slots up to ``seconds`` early. Their latency then counts from their
    actual start (never below the service time); their lag is 0. 0 wakes up for every slot
    (on the loop's millisecond timers); ``with_spin`` ignores the batch."""
    batch = _seconds_within("batch", seconds, 0.1)
    return lambda c: replace(c, batch=batch)


def with_spin(seconds: float) -> Offer:
    """Busy-wait the last ``seconds`` before each slot instead of sleeping, so calls start
    within microseconds of their intended time rather than within the event loop's
    millisecond timer tick. Costs CPU (a whole core above ~1k slots/s); 2 ms is plenty."""
    spin = _seconds_within("spin", seconds, 1.0)
    return lambda c: replace(c, spin=spin)


def _seconds_within(name: str, seconds: float, highest: float) -> float:
    """``seconds`` as a float if it is a number from 0 to ``highest``; else ``InvalidOption``."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not (math.isfinite(seconds) and 0 <= seconds <= highest)
    ):
        raise InvalidOption(f"{name} must be between 0 and {highest:g} second, got {seconds!r}")
    return float(seconds)
