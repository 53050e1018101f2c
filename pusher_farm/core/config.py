"""The one settings record of a run (``Config``) and the offers that set it.

Every setting lives here once: its default, its check (in ``checks``: it reads numbers and
also text such as "30s", "none", "4ms", normalises the value and raises the setting's own error
with a reason that says how to fix it), and where it applies. ``Config`` runs every check
when it is made (``Config(...)``, ``config.replace(...)``, ``Config.from_wire(...)``), so a
record that exists is valid.

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
from typing import Any

from pusher_farm.core import checks
from pusher_farm.core.checks import DEFAULT_MAX_NAMES, LOSS_POLICIES, MAX_OVERTIME
from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.schedule import Profile
from pusher_farm.core.thresholds import check_all as check_thresholds
from pusher_farm.errors import InvalidOption, ProtocolError, PusherError
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
#: Per-call bound by default, so a run always ends; ``with_timeout(None)`` removes it.
DEFAULT_TIMEOUT = 30.0
#: Slots due within this long of a wake-up are launched with it (``with_batch``).
DEFAULT_BATCH = 0.004


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
    target: str | None = _setting(None, checks.target)
    #: the target's parameters (``--param k=v``): plain data
    params: Mapping[str, Any] = _setting({}, checks.params)
    #: the rate profile (``with_profile``); ``None``: a constant rate given to ``work``
    profile: Profile | None = _setting(None, checks.profile, wire=checks.profile_wire, unwire=checks.profile_unwire)  # noqa: RUF009
    #: seconds after which the schedule is cut (``--duration`` with ``--stages``); None: not cut
    until: float | None = _setting(None, checks.until)
    #: most calls in flight per process; a slot that finds them all busy is canceled
    overtime: int = _setting(DEFAULT_OVERTIME, checks.overtime)
    #: per-call bound in seconds (a call past it fails as ``Timeout``); None: no bound
    timeout: float | None = _setting(DEFAULT_TIMEOUT, checks.timeout)
    #: seconds per report window (the time series' resolution)
    window: float = _setting(1.0, checks.window)
    #: seconds of busy-waiting before each slot (0: sleep on the loop's millisecond timers)
    spin: float = _setting(0.0, checks.spin)
    #: slots due within this long of a wake-up start with it, up to this early (fewer wake-ups)
    batch: float = _setting(DEFAULT_BATCH, checks.batch)
    #: the scenario's name: its rows in the report, and the name of its calls unless the target
    #: names them (``ctx.name``)
    name: str = _setting("default", checks.name)
    #: seconds after the run's start at which this scenario begins (a scenario of a run): a
    #: closed model's users start then; an open model's profile itself begins with that many
    #: seconds at rate 0 (``scenario_configs`` builds it so), this field only tells the report
    start: float = _setting(0.0, checks.offset)
    #: closed model: users looping on the target back to back (a number or stages of users);
    #: None: the open model (a rate profile, or drain lanes)
    users: Profile | None = _setting(None, checks.users, wire=checks.profile_wire, unwire=checks.profile_unwire)  # noqa: RUF009
    #: closed model: pause after each call of a user, seconds (low, high: uniform between)
    think: tuple[float, float] = _setting((0.0, 0.0), checks.think, wire=list, unwire=tuple)
    #: closed model: calls per user (0: as many as fit in the run)
    iterations: int = _setting(0, checks.iterations)
    #: distinct call names kept (per process, and merged); past them calls count under ``other``
    max_names: int = _setting(DEFAULT_MAX_NAMES, checks.max_names)
    #: what losing an agent mid-run does: move its share to the others from the next plan
    #: epoch ("rebalance"), stop the run ("abort"), or carry on without it ("continue")
    on_agent_loss: str = _setting("rebalance", checks.policy, "farm")
    #: an agent that connects mid-run gets a share from the next epoch
    late_join: bool = _setting(True, checks.flag("late_join"), "farm")
    #: gossip listeners, each on a thread of its own (they live in this process)
    listeners: tuple[Gossiper, ...] = _setting((), checks.listeners, "local")
    #: gossips one listener may have waiting before further ones are counted as dropped
    gossip_capacity: int = _setting(65_536, checks.capacity, "local")
    # Work items (``pusher_farm.items``): where they come from, how often one is tried, what
    # happens to those that finish. The feed, the files and the callbacks live where the
    # items are handed out (this process, or a farm's coordinator).
    #: the work items: a file name (``-``: stdin) or an iterable; None: calls take no item
    feed: Any = _setting(None, _items.feed, "farm")  # noqa: RUF009
    #: start the feed over when it runs dry (rate mode), instead of ending the run
    feed_cycle: bool = _setting(False, checks.flag("feed_cycle"), "farm")
    #: times an item asking to be retried is tried again (then it fails with the last reason)
    max_retries: int = _setting(0, _items.retries)
    #: seconds a retried item waits before a call takes it again
    retry_delay: float = _setting(0.0, lambda v: checks.seconds("retry_delay", v, lowest=0.0, highest=3600.0))
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
    abort_on_fail: bool = _setting(False, checks.flag("abort_on_fail"), "farm")
    #: stop a run that measures the generator itself (two windows in a row over the limits)
    abort_when_generator_limited: bool = _setting(False, checks.flag("abort_when_generator_limited"), "farm")

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, f.metadata["check"](getattr(self, f.name)))
        if self.start and self.profile is not None:
            first = self.profile.stages[0]
            if not (first.start == first.end == 0 and first.duration >= self.start - 1e-9):
                raise InvalidOption(
                    f"scenario {self.name!r}: an open model's profile begins with its start at rate 0 "
                    "(scenario_configs builds it so)"
                )
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
        out = {k: checks.finite(v) for k, v in self.to_wire().items()}
        farm: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata["scope"] == "farm":
                farm[f.name] = checks.named(getattr(self, f.name))
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
