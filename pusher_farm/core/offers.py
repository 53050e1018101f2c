"""The offers: functions that set one part of a worker's ``Config`` each, checked where they
are written (``hire("w", target, with_overtime(50), with_timeout("2s"))``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pusher_farm.core.config import Config
from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.load import Closed, Drain, Open
from pusher_farm.core.schedule import Constant, Profile
from pusher_farm.core.setting_checks import listeners as _listeners
from pusher_farm.errors import InvalidOption

__all__ = [
    "Offer",
    "with_batch",
    "with_gossips",
    "with_items",
    "with_overtime",
    "with_profile",
    "with_spin",
    "with_timeout",
    "with_users",
    "with_window",
]

Offer = Callable[[Config], Config]


def _offer(**change: Any) -> Offer:
    """An offer that sets ``change``, checked now (an offer fails where it is written)."""
    Config(**change)
    return lambda c: c.replace(**change)


def with_overtime(limit: int) -> Offer:
    """At most ``limit`` calls in flight; a slot that finds them all busy is canceled (0
    cancels every slot)."""
    return _offer(overtime=limit)


def with_gossips(*listeners: Gossiper) -> Offer:
    """Send every slot's events to these listeners (each on its own thread)."""
    _listeners(listeners)
    return lambda c: c.replace(listeners=c.listeners + tuple(listeners))


def with_timeout(seconds: float | None) -> Offer:
    """Bound each call to ``seconds`` (a call past it fails as ``Timeout``); ``None``: no bound."""
    return _offer(timeout=seconds)


def with_profile(profile: Profile) -> Offer:
    """Follow this rate profile (``Stages``) instead of the constant rate given to ``work``."""
    if not isinstance(profile, Profile):
        raise InvalidOption(f"a profile must be a Constant or Stages, got {profile!r}")
    return _offer(load=Open(profile))


def with_users(users: int | Profile, *, think: float | tuple[float, float] = 0.0, iterations: int = 0) -> Offer:
    """The closed model instead of a rate: ``users`` (a number, or a ``Stages`` profile of
    users) each call the target back to back, pausing ``think`` seconds after each call (a
    ``(low, high)`` pair: uniform between), ``iterations`` calls each (0: until the run's end).
    ``work(None, duration)`` runs them; their latency is their service time."""
    profile = users if isinstance(users, Profile) else Constant(users) if _whole(users) else None
    if profile is None:
        raise InvalidOption(f"users must be a whole number of users or a profile of them, got {users!r}")
    low, high = think if isinstance(think, tuple) else (think, think)
    return _offer(load=Closed(profile, (float(low), float(high)), iterations))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def with_window(seconds: float) -> Offer:
    """Report window length (the time series' resolution), 1 s by default."""
    return _offer(window=seconds)


def with_batch(seconds: float) -> Offer:
    """Launch every slot due within ``seconds`` of a wake-up with it: fewer wake-ups (about a
    third of the CPU per call at a few thousand calls per second with the default 4 ms), at the
    price of starting such slots up to ``seconds`` early. Their latency then counts from their
    actual start (never below the service time); their lag is 0. 0 wakes up for every slot
    (on the loop's millisecond timers); ``with_spin`` ignores the batch."""
    return _offer(batch=seconds)


def with_items(feed: Any, **settings: Any) -> Offer:
    """Give each call a work item from ``feed`` (a file name, ``-`` or an iterable) and say
    what happens to them: ``feed_cycle``, ``max_retries``, ``retry_delay``, ``parallel`` (drain
    mode: that many lanes work through every item once; ``rps`` given to ``work`` caps them),
    ``results``, ``dead_letter``, ``failure_handlers``, ``on_success``, ``on_retry``,
    ``on_failure`` (see ``Config``)."""
    allowed = {"feed_cycle", "max_retries", "retry_delay", "parallel", "results", "dead_letter",
               "failure_handlers", "on_success", "on_retry", "on_failure"}  # fmt: skip
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise InvalidOption(f"with_items has no setting {unknown[0]!r}; it takes {', '.join(sorted(allowed))}")
    parallel = settings.pop("parallel", 0)
    if parallel:
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 0:
            raise InvalidOption(f"parallel must be a whole number of lanes, got {parallel!r}")
        settings["load"] = Drain.lanes(parallel)
    return _offer(feed=feed, **settings)


def with_spin(seconds: float) -> Offer:
    """Busy-wait the last ``seconds`` before each slot instead of sleeping, so calls start
    within microseconds of their intended time rather than within the event loop's
    millisecond timer tick. Costs CPU (a whole core above ~1k slots/s); 2 ms is plenty."""
    return _offer(spin=seconds)
