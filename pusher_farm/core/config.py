"""The one settings record of a run's workload (``Config``).

Every setting lives here once: its default, its check (in ``setting_checks``: it reads numbers
and also text such as "30s", "none", "4ms", normalises the value and raises the setting's own
error with a reason that says how to fix it), and where it applies. ``Config`` runs every check
when it is made (``Config(...)``, ``config.replace(...)``, ``Config.from_wire(...)``), and the
rules between settings (a drain's lanes within overtime, ``abort_on_fail`` with a threshold),
so a record that exists is valid.

A ``Config`` is one workload: a ``Worker``'s, or one scenario of a ``Run`` (``core.run``). Its
``load`` is the load model (``core.load``: ``Open``, ``Closed`` or ``Drain``). Where a setting
applies (``scope`` in the field's metadata):

* ``agent``: part of the plan an agent receives (``to_wire``/``from_wire``);
* ``farm``: read where the run is coordinated only (feeds, handlers, policies, thresholds);
* ``local``: never leaves this process (gossip listeners).

Settings marked ``run`` belong to the whole run, not to one scenario: a ``Run`` gives every
scenario its own values of them (window, thresholds, policies).

A new setting is a field here, its command-line option and its use: the wire form, the checks
and ``replace`` follow from the field. The offers that set fields (``with_*``) are in ``offers``;
the friendly form that builds one from rates, users and durations is ``core.scenario``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pusher_farm.core import setting_checks as checks
from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.load import Load, load_from_wire
from pusher_farm.core.thresholds import check_all as check_thresholds
from pusher_farm.errors import InvalidOption, ProtocolError, PusherError
from pusher_farm.items import settings as _items

__all__ = ["DEFAULT_BATCH", "DEFAULT_OVERTIME", "DEFAULT_TIMEOUT", "DEFAULT_WINDOW", "Config"]

#: Calls in flight allowed by default. pusher's workers are goroutines without a bound; a
#: Python process holds far fewer calls usefully, and a thread per in-flight call for plain
#: functions.
DEFAULT_OVERTIME = 10_000
#: Per-call bound by default, so a run always ends; ``with_timeout(None)`` removes it.
DEFAULT_TIMEOUT = 30.0
#: Slots due within this long of a wake-up are launched with it (``with_batch``).
DEFAULT_BATCH = 0.004
#: Seconds per report window.
DEFAULT_WINDOW = 1.0


def _setting(
    default: Any,
    check: Callable[[Any], Any],
    scope: str = "agent",
    *,
    run: bool = False,
    wire: Callable[[Any], Any] | None = None,
    unwire: Callable[[Any], Any] | None = None,
) -> Any:
    meta = {"check": check, "scope": scope, "run": run, "wire": wire, "unwire": unwire}
    if isinstance(default, (tuple, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


def _load_wire(load: Load | None) -> Any:
    return None if load is None else load.to_wire()


def _load_unwire(data: Any) -> Load | None:
    return None if data is None else load_from_wire(data)


@dataclass(frozen=True)
class Config:
    """A workload's settings, checked once when made; immutable (``replace`` makes a new one).

    ``Worker.config()`` returns its worker's; ``with_*`` offers change one setting each; a run's
    scenarios are one each; the farm sends an agent ``to_wire()`` and the agent reads it back
    with ``from_wire``.
    """

    #: the target by name (a built-in or ``package.module:function``) when it must be resolved
    #: elsewhere (on farm agents); ``None`` for a callable given in this process
    target: str | None = _setting(None, checks.target)
    #: the target's parameters (``--param k=v``): plain data
    params: Mapping[str, Any] = _setting({}, checks.params)
    #: the load model: ``Open`` (a rate), ``Closed`` (users) or ``Drain`` (lanes on items);
    #: None until a run gives it (``work(rps, duration)`` makes an open one)
    load: Load | None = _setting(None, checks.load, wire=_load_wire, unwire=_load_unwire)  # noqa: RUF009
    #: most calls in flight per process; a slot that finds them all busy is canceled
    overtime: int = _setting(DEFAULT_OVERTIME, checks.overtime)
    #: per-call bound in seconds (a call past it fails as ``Timeout``); None: no bound
    timeout: float | None = _setting(DEFAULT_TIMEOUT, checks.timeout)
    #: seconds per report window (the time series' resolution)
    window: float = _setting(DEFAULT_WINDOW, checks.window, run=True)
    #: seconds of busy-waiting before each slot (0: sleep on the loop's millisecond timers)
    spin: float = _setting(0.0, checks.spin)
    #: slots due within this long of a wake-up start with it, up to this early (fewer wake-ups)
    batch: float = _setting(DEFAULT_BATCH, checks.batch)
    #: the scenario's name: its rows in the report, and the name of its calls unless the target
    #: names them (``ctx.name``)
    name: str = _setting("default", checks.name)
    #: distinct call names kept (per process, and merged); past them calls count under ``other``
    max_names: int = _setting(checks.DEFAULT_MAX_NAMES, checks.max_names)
    #: what losing an agent mid-run does: move its share to the others from the next plan
    #: epoch ("rebalance"), stop the run ("abort"), or carry on without it ("continue")
    on_agent_loss: str = _setting("rebalance", checks.policy, "farm", run=True)
    #: an agent that connects mid-run gets a share from the next epoch
    late_join: bool = _setting(True, checks.flag("late_join"), "farm", run=True)
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
    thresholds: tuple[str, ...] = _setting((), check_thresholds, "farm", run=True)
    #: stop the run once a threshold fails (checked after every window)
    abort_on_fail: bool = _setting(False, checks.flag("abort_on_fail"), "farm", run=True)
    #: stop a run that measures the generator itself (two windows in a row over the limits)
    abort_when_generator_limited: bool = _setting(False, checks.flag("abort_when_generator_limited"), "farm", run=True)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, f.metadata["check"](getattr(self, f.name)))
        if self.load is not None:
            self.load.check(self.overtime, self.name)
            if self.feed_cycle and self.load.needs_items:
                raise InvalidOption(f"{self.load.describe_kind()} processes a feed once: drop feed_cycle")
        if self.abort_on_fail and not self.thresholds:
            raise InvalidOption("abort_on_fail needs a threshold to check (--threshold 'p99<250ms')")

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
        if self.load is not None:
            out.update(checks.finite(self.load.plain()))
        farm: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata["scope"] == "farm":
                farm[f.name] = checks.named(getattr(self, f.name))
        out["farm"] = farm
        return out

    def length(self) -> float:
        """Seconds from the run's start to this workload's end (``inf``: open-ended)."""
        if self.load is None:
            raise InvalidOption("no load model: give rps, users or drain lanes")
        return self.load.length()

    @classmethod
    def run_fields(cls) -> tuple[str, ...]:
        """The settings that belong to the whole run (a ``Run`` gives every scenario its own)."""
        return tuple(f.name for f in fields(cls) if f.metadata["run"])
