"""The one settings record of a run (``Config``) and the offers that set it.

Every setting lives here once: its default, its check, and where it applies. A check reads
numbers and also text ("30s", "none", "4ms": what a command line, a TOML file or a ``FARM_*``
variable gives), normalises the value and raises the setting's own error with a reason that
says how to fix it. ``Config`` runs every check when it is made (``Config(...)``,
``config.replace(...)``, ``Config.from_wire(...)``), so a record that exists is valid.

Where a setting applies (``scope`` in the field's metadata):

* ``agent``: part of the plan an agent receives (``to_wire``/``from_wire``);
* ``farm``: read by the coordinator only (what losing or gaining an agent does);
* ``local``: never leaves this process (gossip listeners).

A new setting is a field here, its command-line option and its use: the wire form, the checks
and ``replace`` follow from the field. The offers that set fields (``with_*``) are in ``offers``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.schedule import Constant, Profile, parse_duration, profile_from_stages
from pusher_farm.core.thresholds import check_all as check_thresholds
from pusher_farm.core.window import MAX_NAME, MAX_NAMES
from pusher_farm.errors import InvalidOption, InvalidOvertime, ProtocolError, PusherError
from pusher_farm.items import settings as _items

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_MAX_NAMES",
    "DEFAULT_OVERTIME",
    "DEFAULT_TIMEOUT",
    "LOSS_POLICIES",
    "MAX_OVERTIME",
    "Config",
]

#: Calls in flight allowed by default. pusher allows a million goroutines; a Python process
#: holds far fewer calls usefully, and a thread per in-flight call for plain functions.
DEFAULT_OVERTIME = 10_000
#: the most calls in flight one process may be asked for
MAX_OVERTIME = 1_000_000
#: Per-call bound by default, so a run always ends; ``with_timeout(None)`` removes it.
DEFAULT_TIMEOUT = 30.0
#: Slots due within this long of a wake-up are launched with it (``with_batch``).
DEFAULT_BATCH = 0.004
#: what losing an agent mid-run does (``on_agent_loss``)
LOSS_POLICIES = ("rebalance", "abort", "continue")

_NONE = ("none", "off")
#: the longest scenario or call name; the most distinct call names a run may have; the most users
MAX_USERS = 1_000_000
#: distinct call names a run keeps by default (past them, calls go under ``other``)
DEFAULT_MAX_NAMES = 1000


# -- checks: value in (number or text), normalised value out, or the setting's own error ------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seconds(name: str, value: Any, *, lowest: float, highest: float, zero: bool = False) -> float:
    """Seconds from a number or a duration text, within [lowest, highest] (0 too if ``zero``)."""
    span = f"{'0 or ' if zero and lowest > 0 else ''}between {_text(lowest)} and {_text(highest)}"
    if isinstance(value, str):
        try:
            value = parse_duration(value, allow_zero=True)
        except PusherError:
            raise InvalidOption(f"cannot read {name} {value!r}: give a duration {span}, e.g. 30s or 500ms") from None
    if not _is_number(value) or not math.isfinite(value):
        raise InvalidOption(f"{name} must be a number of seconds {span}, got {value!r}")
    seconds = float(value)
    if zero and seconds == 0:
        return 0.0
    if not lowest <= seconds <= highest:
        raise InvalidOption(f"{name} must be {span}, got {value!r}")
    return seconds


def _text(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


def _overtime(value: Any) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOvertime(f"must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidOvertime(f"must be more or equal zero, got {value}")
    if value > MAX_OVERTIME:
        raise InvalidOvertime(f"must be at most {MAX_OVERTIME:,} calls in flight per process, got {value:,}")
    return value


def _timeout(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
        return None
    if (isinstance(value, str) and value.strip() in ("0", "0s")) or (_is_number(value) and value == 0):
        raise InvalidOption("timeout must be positive (e.g. 30s), or none for no bound")
    return _seconds("timeout", value, lowest=1e-6, highest=86_400.0)


def _until(value: Any) -> float | None:
    if value is None:
        return None
    return _seconds("duration", value, lowest=1e-6, highest=366 * 86_400.0)


def _window(value: Any) -> float:
    return _seconds("window", value, lowest=0.01, highest=3600.0)


def _spin(value: Any) -> float:
    return _seconds("spin", value, lowest=0.0, highest=1.0, zero=True)


def _batch(value: Any) -> float:
    return _seconds("batch", value, lowest=0.0, highest=0.1, zero=True)


def _profile(value: Any) -> Profile | None:
    if value is not None and not isinstance(value, Profile):
        raise InvalidOption(f"a profile must be a Constant or Stages, got {value!r}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or not value.isprintable():
        raise InvalidOption(f"a scenario name is a short printable text (1 to {MAX_NAME} characters), got {value!r}")
    return value


def _max_names(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NAMES:
        raise InvalidOption(f"max_names must be a whole number in 1..{MAX_NAMES:,}, got {value!r}")
    return value


def _users(value: Any) -> Profile | None:
    """Closed model: how many users loop on the target, as a profile of users over time (a
    number: that many, constant)."""
    if value is None or isinstance(value, Profile):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_USERS:
        raise InvalidOption(f"users must be a whole number in 1..{MAX_USERS:,} or stages of users, got {value!r}")
    return Constant(value)


def _think(value: Any) -> tuple[float, float]:
    """Think time: one duration, or a uniform range ``(low, high)`` / ``"50ms..150ms"``."""
    if isinstance(value, str) and ".." in value:
        value = tuple(value.split("..", 1))
    low, high = value if isinstance(value, (tuple, list)) and len(value) == 2 else (value, value)
    low = _seconds("think", low, lowest=0.0, highest=3600.0, zero=True)
    high = _seconds("think", high, lowest=0.0, highest=3600.0, zero=True)
    if high < low:
        raise InvalidOption(f"think time range must go from low to high, got {_text(low)}..{_text(high)}")
    return (low, high)


def _iterations(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 40:
        raise InvalidOption(f"iterations must be a whole number >= 0 (0: no bound), got {value!r}")
    return value


def _offset(value: Any) -> float:
    return _seconds("start", value, lowest=0.0, highest=366 * 86_400.0, zero=True)


def _listeners(value: Any) -> tuple[Gossiper, ...]:
    listeners = tuple(value)
    for listener in listeners:
        if not (callable(getattr(listener, "listen", None)) and callable(getattr(listener, "stop", None))):
            raise InvalidOption(f"{listener!r} is not a Gossiper: it needs listen(worker, gossips) and stop()")
    return listeners


def _capacity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOption(f"gossip_capacity must be a positive whole number, got {value!r}")
    return value


def _target(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 512:
        raise InvalidOption(f"a target name is a built-in or package.module:function, got {value!r}")
    return value


#: what a target parameter may hold: plain data only (it may cross the wire)
_PLAIN = (str, int, float, bool, type(None))


def _params(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or len(value) > 256:
        raise InvalidOption(f"target parameters must be a mapping of names to values, got {value!r}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= 128:
            raise InvalidOption(f"a target parameter name must be a short text, got {key!r}")
        items = item if isinstance(item, (list, tuple)) else [item]
        if len(items) > 1024 or not all(isinstance(i, _PLAIN) for i in items):
            raise InvalidOption(f"target parameter {key!r} must be plain text, numbers or a list of them")
        if any(isinstance(i, str) and len(i) > 1 << 20 for i in items):
            raise InvalidOption(f"target parameter {key!r} is over 1 MiB")
        out[key] = list(item) if isinstance(item, (list, tuple)) else item
    return MappingProxyType(out)


def _policy(value: Any) -> str:
    if value not in LOSS_POLICIES:
        raise InvalidOption(f"on_agent_loss must be one of {', '.join(LOSS_POLICIES)}, got {value!r}")
    return str(value)


def _flag(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidOption(f"{name} must be true or false, got {value!r}")
        return value

    return check


def _profile_wire(profile: Profile | None) -> Any:
    return None if profile is None else [[s.duration, s.start, s.end] for s in profile.stages]


def _profile_unwire(data: Any) -> Profile | None:
    return None if data is None else profile_from_stages(data)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no infinity: an open-ended stage
    reads ``[null, rate, rate]``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _named(value: Any) -> Any:
    """``value`` as plain data: functions and other objects by their name."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_named(v) for v in value]
    name = getattr(value, "__qualname__", None)
    return f"{getattr(value, '__module__', '')}:{name}" if name else f"<{type(value).__name__}>"


def _setting(
    default: Any,
    check: Callable[[Any], Any],
    scope: str = "agent",
    *,
    wire: Callable[[Any], Any] | None = None,
    unwire: Callable[[Any], Any] | None = None,
) -> Any:
    meta = {"check": check, "scope": scope, "wire": wire, "unwire": unwire}
    if isinstance(default, (tuple, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Config:
    """A run's settings, checked once when made; immutable (``replace`` makes a new one).

    ``Worker.config()`` returns its worker's; ``with_*`` offers change one setting each;
    the farm sends an agent ``to_wire()`` and the agent reads it back with ``from_wire``.
    """

    #: the target by name (a built-in or ``package.module:function``) when it must be resolved
    #: elsewhere (on farm agents); ``None`` for a callable given in this process
    target: str | None = _setting(None, _target)
    #: the target's parameters (``--param k=v``): plain data
    params: Mapping[str, Any] = _setting({}, _params)
    #: the rate profile (``with_profile``); ``None``: a constant rate given to ``work``
    profile: Profile | None = _setting(None, _profile, wire=_profile_wire, unwire=_profile_unwire)  # noqa: RUF009
    #: seconds after which the schedule is cut (``--duration`` with ``--stages``); None: not cut
    until: float | None = _setting(None, _until)
    #: most calls in flight per process; a slot that finds them all busy is canceled
    overtime: int = _setting(DEFAULT_OVERTIME, _overtime)
    #: per-call bound in seconds (a call past it fails as ``Timeout``); None: no bound
    timeout: float | None = _setting(DEFAULT_TIMEOUT, _timeout)
    #: seconds per report window (the time series' resolution)
    window: float = _setting(1.0, _window)
    #: seconds of busy-waiting before each slot (0: sleep on the loop's millisecond timers)
    spin: float = _setting(0.0, _spin)
    #: slots due within this long of a wake-up start with it, up to this early (fewer wake-ups)
    batch: float = _setting(DEFAULT_BATCH, _batch)
    #: the scenario's name: its rows in the report, and the name of its calls unless the target
    #: names them (``ctx.name``)
    name: str = _setting("default", _name)
    #: seconds after the run's start at which this scenario begins (a scenario of a run)
    start: float = _setting(0.0, _offset)
    #: closed model: users looping on the target back to back (a number or stages of users);
    #: None: the open model (a rate profile, or drain lanes)
    users: Profile | None = _setting(None, _users, wire=_profile_wire, unwire=_profile_unwire)  # noqa: RUF009
    #: closed model: pause after each call of a user, seconds (low, high: uniform between)
    think: tuple[float, float] = _setting((0.0, 0.0), _think, wire=list, unwire=tuple)
    #: closed model: calls per user (0: as many as fit in the run)
    iterations: int = _setting(0, _iterations)
    #: distinct call names kept (per process, and merged); past them calls count under ``other``
    max_names: int = _setting(DEFAULT_MAX_NAMES, _max_names)
    #: what losing an agent mid-run does: move its share to the others from the next plan
    #: epoch ("rebalance"), stop the run ("abort"), or carry on without it ("continue")
    on_agent_loss: str = _setting("rebalance", _policy, "farm")
    #: an agent that connects mid-run gets a share from the next epoch
    late_join: bool = _setting(True, _flag("late_join"), "farm")
    #: gossip listeners, each on a thread of its own (they live in this process)
    listeners: tuple[Gossiper, ...] = _setting((), _listeners, "local")
    #: gossips one listener may have waiting before further ones are counted as dropped
    gossip_capacity: int = _setting(65_536, _capacity, "local")
    # Work items (``pusher_farm.items``): where they come from, how often one is tried, what
    # happens to those that finish. The feed, the files and the callbacks live where the
    # items are handed out (this process, or a farm's coordinator).
    #: the work items: a file name (``-``: stdin) or an iterable; None: calls take no item
    feed: Any = _setting(None, _items.feed, "farm")  # noqa: RUF009
    #: start the feed over when it runs dry (rate mode), instead of ending the run
    feed_cycle: bool = _setting(False, _flag("feed_cycle"), "farm")
    #: times an item asking to be retried is tried again (then it fails with the last reason)
    max_retries: int = _setting(0, _items.retries)
    #: seconds a retried item waits before a call takes it again
    retry_delay: float = _setting(0.0, lambda v: _seconds("retry_delay", v, lowest=0.0, highest=3600.0))
    #: drain mode: calls kept going per process, each on the next item, until the feed is
    #: done (0: rate mode)
    parallel: int = _setting(0, _items.lanes)
    #: one JSON line per finished item is appended here
    results: str | None = _setting(None, _items.path("results"), "farm")
    #: each failed item is appended here as a JSON line (the dead-letter failure handler)
    dead_letter: str | None = _setting(None, _items.path("dead_letter"), "farm")
    #: more failure handlers: ``module:function`` names or functions of a failed item's record
    failure_handlers: tuple[Any, ...] = _setting((), _items.handlers, "farm")
    on_success: tuple[Callable[..., Any], ...] = _setting((), _items.callbacks("on_success"), "farm")
    on_retry: tuple[Callable[..., Any], ...] = _setting((), _items.callbacks("on_retry"), "farm")
    on_failure: tuple[Callable[..., Any], ...] = _setting((), _items.callbacks("on_failure"), "farm")
    #: pass/fail criteria on the merged run (``p99<250ms``, ``error_rate<1%``; see thresholds)
    thresholds: tuple[str, ...] = _setting((), check_thresholds, "farm")
    #: stop the run once a threshold fails (checked after every window)
    abort_on_fail: bool = _setting(False, _flag("abort_on_fail"), "farm")
    #: stop a run that measures the generator itself (two windows in a row over the limits)
    abort_when_generator_limited: bool = _setting(False, _flag("abort_when_generator_limited"), "farm")

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, f.metadata["check"](getattr(self, f.name)))
        if self.users is not None:
            if self.profile is not None or self.parallel:
                what = "a rate" if self.profile is not None else "drain lanes (parallel)"
                raise InvalidOption(f"scenario {self.name!r}: give either users (closed model) or {what}, not both")
            if self.users.stages[0].duration == math.inf and self.until is None and not self.iterations:
                raise InvalidOption(f"scenario {self.name!r}: users without an end: give a duration or iterations")
        elif self.think != (0.0, 0.0):
            raise InvalidOption(f"scenario {self.name!r}: think time needs the closed model (users), not a rate")
        elif self.iterations:
            raise InvalidOption(f"scenario {self.name!r}: iterations need the closed model (users)")
        if self.parallel > self.overtime:
            raise InvalidOption(
                f"parallel {self.parallel} is more than overtime {self.overtime} (the most calls in flight "
                "per process): raise overtime or lower parallel"
            )

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes``, every setting checked again."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise InvalidOption(f"no setting called {unknown[0]!r}")
        return replace(self, **changes)

    def to_wire(self) -> dict[str, Any]:
        """The settings an agent needs, as plain msgpack-able data."""
        out = {}
        for f in fields(self):
            if f.metadata["scope"] == "agent":
                value = getattr(self, f.name)
                wire = f.metadata["wire"]
                out[f.name] = wire(value) if wire else (dict(value) if isinstance(value, Mapping) else value)
        return out

    @classmethod
    def from_wire(cls, data: Any) -> Config:
        """The settings a plan carries, checked like any other; ``ProtocolError`` if they are
        not valid (an unknown setting is refused: this side would not honour it)."""
        if not isinstance(data, Mapping):
            raise ProtocolError(f"settings must be a map, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls) if f.metadata["scope"] == "agent"}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ProtocolError(f"unknown setting {unknown[0]!r} (the coordinator is newer: upgrade this agent)")
        try:
            values = {}
            for name, value in data.items():
                unwire = known[name].metadata["unwire"]
                values[name] = unwire(value) if unwire else value
            return cls(**values)
        except PusherError as exc:
            raise ProtocolError(f"bad settings: {exc}") from None
        except Exception as exc:  # whatever a peer's values make a check trip over
            raise ProtocolError(f"bad settings: {type(exc).__name__}") from None

    def plain(self) -> dict[str, Any]:
        """The settings as plain data (a manifest, ``--show-config``): what agents get, and
        under ``farm`` what stays with the coordinator (functions and feeds by name)."""
        out = {k: _finite(v) for k, v in self.to_wire().items()}
        farm: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata["scope"] == "farm":
                farm[f.name] = _named(getattr(self, f.name))
        out["farm"] = farm
        return out

    def end(self) -> float:
        """Seconds from the run's start to this config's end (a closed model's users start
        at ``start``; an open profile already begins with it)."""
        return self.length() + (self.start if self.users is not None else 0.0)

    def length(self) -> float:
        """Seconds the schedule runs (``inf``: open-ended); needs a profile (drain mode: its
        cut, if any)."""
        if self.users is not None:
            return self.users.length(self.until)
        if self.profile is None and self.parallel:
            return math.inf if self.until is None else self.until
        if self.profile is None:
            raise InvalidOption("no rate profile: give rps, or a profile with with_profile(...)")
        return self.profile.length(self.until)
