"""Scenarios: the one way a run's workloads are written, whoever writes them.

A ``Scenario`` says what one workload does (k6's scenarios, Locust's user classes) in the terms
a person uses: a target and its parameters, and one load model:

* open: ``rps`` (constant-arrival-rate) or ``stages`` (ramping-arrival-rate);
* closed: ``users`` (a number: constant-vus; stages of users: ramping-vus), each user looping
  on the target with an optional ``think`` time, ``iterations`` calls per user if given
  (per-vu-iterations);
* drain: ``drain`` with its ``feed``: ``parallel`` lanes (10 by default) working through every
  item once (shared-iterations; Gofherd's herd), ``rps`` an optional cap;

starting ``start`` seconds into the run and lasting ``duration`` (default: to the run's end),
with its own caps, its own feed of work items and what happens to them. The command line's
one-workload form, a ``[[scenario]]`` table of a TOML file (``scenario_from_table``), a
``FARM_*`` variable and Python all make one, and ``build_run`` turns them into a checked ``Run``:
every default, bound and rule is here (or in ``Config`` and the load models), so they all agree.
Bad input is refused with one ``ScenarioError`` naming the scenario and the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pusher_farm.core import setting_checks as checks
from pusher_farm.core.config import Config
from pusher_farm.core.load import Closed, Drain, Load, Open
from pusher_farm.core.load.closed import MAX_USERS
from pusher_farm.core.load.drain import MAX_PARALLEL
from pusher_farm.core.run import Run
from pusher_farm.core.schedule import Constant, Profile, Stage, Stages, parse_duration, parse_stages
from pusher_farm.errors import InvalidOption, PusherError

__all__ = ["DEFAULT_PARALLEL", "SCENARIO_KEYS", "Scenario", "ScenarioError", "build_run", "scenario_from_table"]

#: a drain's lanes when none are given
DEFAULT_PARALLEL = 10
#: the http target's options a scenario may give as keys of its own (as on the command line)
_HTTP_KEYS = ("url", "method", "body", "engine", "warm", "expect_status", "expect_body")
#: keys that hold lists (a file may give one value or a list)
_LISTS = {"header": "headers", "expect_header": "expect_header"}
#: the work-item keys: only with a feed
_ITEM_KEYS = ("drain", "parallel", "feed_cycle", "max_retries", "retry_delay", "results", "dead_letter",
              "failure_handler")  # fmt: skip
#: the keys of a ``[[scenario]]`` table (and of the command line's one scenario)
SCENARIO_KEYS = (
    "name", "target", "params", "rps", "stages", "users", "think", "iterations", "start", "duration",
    "overtime", "timeout", "batch", "spin", "max_names", "feed", *_ITEM_KEYS, *_LISTS, *_HTTP_KEYS,
)  # fmt: skip


class ScenarioError(InvalidOption):
    """A scenario that cannot be run: ``scenario`` and ``key`` say where, ``why`` says why
    (``cause``: the kind of the error behind it, e.g. ``invalid rps``)."""

    def __init__(self, scenario: str, key: str, why: str, cause: str = "") -> None:
        self.scenario, self.key, self.why, self.cause = scenario, key, why, cause
        super().__init__(f"scenario {scenario!r}, key {key!r}: {why}")

    @classmethod
    def of(cls, scenario: str, key: str, exc: PusherError) -> ScenarioError:
        """``exc`` as a refusal of ``scenario``'s ``key``."""
        return cls(scenario, key, exc.reason, "" if isinstance(exc, InvalidOption) else exc.kind)


@dataclass(frozen=True)
class Scenario:
    """One named workload of a run (see the module docstring). ``target`` is a built-in or
    ``package.module:function`` name (or such a function): agents resolve it on their own host.
    A setting left at None takes the run's."""

    name: str
    target: Any
    rps: float | None = None
    stages: str | Sequence[Any] | None = None
    users: int | str | None = None
    think: Any = 0.0
    iterations: Any = 0
    start: Any = 0.0
    duration: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    overtime: Any = None
    timeout: Any = "default"
    batch: Any = None
    spin: Any = None
    max_names: Any = None
    #: work items: a file name (``-``: stdin, ``redis://...``, a plugin's ``NAME:ARG``) or an iterable
    feed: Any = None
    #: drain mode: every item once, ``parallel`` lanes (the whole farm's) at a time
    drain: bool = False
    parallel: Any = None
    feed_cycle: bool = False
    max_retries: Any = 0
    retry_delay: Any = 0.0
    results: str | None = None
    dead_letter: str | None = None
    failure_handlers: Sequence[Any] = ()
    on_success: Sequence[Callable[..., Any]] = ()
    on_retry: Sequence[Callable[..., Any]] = ()
    on_failure: Sequence[Callable[..., Any]] = ()

    def config(self, *, run_s: float | None, settings: Config) -> Config:
        """This scenario as a checked ``Config`` on the run's ``settings`` (its caps are the
        defaults), ``run_s`` the run's length (None: each scenario's own)."""
        return _config(self, run_s, settings)


def scenario_from_table(table: Any, position: int) -> Scenario:
    """The scenario a ``[[scenario]]`` table (a mapping of the keys above) describes; a
    ``ScenarioError`` naming the scenario and the key for anything not valid."""
    if not isinstance(table, Mapping):
        raise InvalidOption(f"scenario #{position}: each [[scenario]] must be a table of keys")
    name = table.get("name")
    label = name if isinstance(name, str) and name else f"#{position}"
    if not isinstance(name, str) or not name:
        raise ScenarioError(label, "name", 'every scenario needs a name, e.g. name = "browse"')
    for key in table:
        if key not in SCENARIO_KEYS:
            raise ScenarioError(label, key, f"unknown key (a scenario's keys: {', '.join(sorted(SCENARIO_KEYS))})")
    target = table.get("target")
    if not (isinstance(target, str) and target) and not callable(target):
        raise ScenarioError(label, "target", 'give the scenario a target, e.g. target = "http"')
    if not isinstance(table.get("params", {}), Mapping):
        raise ScenarioError(label, "params", "must be a table of the target's parameters")
    params = dict(table.get("params") or {})
    for key in _HTTP_KEYS:
        if table.get(key) is not None:
            params[key] = table[key]
    for key, param in _LISTS.items():
        if table.get(key):
            value = table[key]
            params[param] = list(value) if isinstance(value, (list, tuple)) else [value]
    own = ("name", "target", "params")
    values = {k: table[k] for k in table if k in Scenario.__dataclass_fields__ and k not in own}
    if table.get("failure_handler"):
        handlers = table["failure_handler"]
        values["failure_handlers"] = tuple(handlers) if isinstance(handlers, (list, tuple)) else (handlers,)
    return Scenario(name=name, target=target, params=params, **values)


def build_run(scenarios: Sequence[Scenario], *, duration: Any = None, settings: Config | None = None) -> Run:
    """The ``Run`` of ``scenarios`` for ``duration`` (the run's length: a number of seconds or a
    duration text; None: each scenario's own), on the run's ``settings`` (window, thresholds,
    policies, and every scenario's default caps)."""
    if not scenarios:
        raise InvalidOption("a run needs at least one scenario ([[scenario]] in the file)")
    seen: set[str] = set()
    for s in scenarios:
        if not isinstance(s, Scenario):
            raise InvalidOption(f"a run's scenarios are Scenario records, got {s!r}")
        if s.name in seen:
            raise ScenarioError(str(s.name), "name", "two scenarios have this name: give each its own")
        seen.add(s.name)
    run_s = None if duration is None else checks.duration(duration)
    base = settings if settings is not None else Config()
    return Run(base, tuple(s.config(run_s=run_s, settings=base) for s in scenarios))


# -- the builder ---------------------------------------------------------------------------------


def _seconds(s: Scenario, key: str, value: Any, *, zero: bool = False) -> float:
    try:
        return parse_duration(value, allow_zero=zero)
    except PusherError as exc:
        raise ScenarioError.of(s.name, key, exc) from None


def _config(s: Scenario, run_s: float | None, base: Config) -> Config:
    """``s`` as a checked ``Config`` (see ``Scenario.config``)."""
    start = _seconds(s, "start", s.start, zero=True)
    if run_s is not None and start >= run_s:
        raise ScenarioError(s.name, "start", f"{start:g}s is past the run's end ({run_s:g}s): start it earlier")
    own = None if s.duration is None else _seconds(s, "duration", s.duration)
    if own is None and run_s is not None:
        own = run_s - start
    elif own is not None and run_s is not None:
        own = min(own, run_s - start)
    changes: dict[str, Any] = {"name": s.name, "target": s.target, "params": dict(s.params)}
    for key in ("overtime", "batch", "spin", "max_names"):
        if getattr(s, key) is not None:
            changes[key] = getattr(s, key)
    if s.timeout != "default":
        changes["timeout"] = s.timeout
    changes.update(_items(s))
    _each(s, changes)
    changes["load"] = _load(s, start, own)
    try:
        return base.replace(**changes)
    except PusherError as exc:
        raise ScenarioError.of(s.name, _key_of(exc.reason, s), exc) from None


def _each(s: Scenario, changes: dict[str, Any]) -> None:
    """Check every setting on its own, so a bad one is named by its key."""
    setting = {f.name: f.metadata["check"] for f in fields(Config)}
    for key, value in changes.items():
        try:
            setting[key](value)
        except PusherError as exc:
            raise ScenarioError.of(s.name, "failure_handler" if key == "failure_handlers" else key, exc) from None
        except (TypeError, ValueError) as exc:
            raise ScenarioError(s.name, key, f"not a valid value ({exc})") from None


def _key_of(message: str, s: Scenario) -> str:
    for key in ("parallel", "overtime", "timeout", "feed_cycle", "feed", "batch", "spin", "max_names", "params"):
        if key in message:
            return key
    return "rps"


def _items(s: Scenario) -> dict[str, Any]:
    """The work-item settings (only with a feed)."""
    given = {
        "drain": s.drain, "parallel": s.parallel is not None, "feed_cycle": s.feed_cycle,
        "max_retries": s.max_retries not in (0, "0", None), "retry_delay": s.retry_delay not in (0, 0.0, "0", None),
        "results": s.results, "dead_letter": s.dead_letter, "failure_handler": s.failure_handlers,
    }  # fmt: skip
    if s.feed is None:
        for key, value in given.items():
            if value:
                raise ScenarioError(s.name, key, "works on items: give it a feed (--feed FILE)")
        if s.on_success or s.on_retry or s.on_failure:
            raise ScenarioError(s.name, "on_success", "callbacks work on items: give the scenario a feed")
        return {}
    return {
        "feed": s.feed, "feed_cycle": s.feed_cycle, "max_retries": s.max_retries, "retry_delay": s.retry_delay,
        "results": s.results, "dead_letter": s.dead_letter, "failure_handlers": tuple(s.failure_handlers),
        "on_success": tuple(s.on_success), "on_retry": tuple(s.on_retry), "on_failure": tuple(s.on_failure),
    }  # fmt: skip


def _load(s: Scenario, start: float, own: float | None) -> Load:
    """The scenario's load model on the run's clock."""
    rate_keys = [k for k in ("rps", "stages") if getattr(s, k) is not None]
    if s.parallel is not None and not s.drain:
        raise ScenarioError(s.name, "parallel", "is for drain mode: add drain (--drain; rate mode caps calls in "
                            "flight with overtime)")  # fmt: skip
    if s.drain:
        if s.stages is not None:
            raise ScenarioError(s.name, "stages", "a drain takes a rate cap (rps), not stages")
        if s.users is not None:
            raise ScenarioError(s.name, "users", "give either a drain (parallel lanes) or users, not both")
        lanes = _whole(s, "parallel", DEFAULT_PARALLEL if s.parallel is None else s.parallel, 1, MAX_PARALLEL)
        cap = None if s.rps is None else _rate(s, "rps", s.rps)
        return _guarded(s, "parallel", lambda: Drain(_shifted(s, Constant(lanes, own), start), cap))
    if s.users is not None:
        if rate_keys:
            raise ScenarioError(s.name, "users", f"a scenario has either a rate ({rate_keys[0]}) or users, not both")
        think = _think(s)
        iterations = _whole(s, "iterations", s.iterations, 0, 1 << 40)
        users = _users(s, own)
        if own is None and not iterations and users.duration == float("inf"):
            raise ScenarioError(s.name, "users", "give users a duration, iterations or stages of users")
        return _guarded(s, "users", lambda: Closed(_shifted(s, users, start), think, iterations))
    if s.think not in (0, 0.0, "0", None):
        raise ScenarioError(s.name, "think", "think time needs the closed model (users), not a rate")
    if s.iterations not in (0, "0", None):
        raise ScenarioError(s.name, "iterations", "iterations need the closed model (users)")
    if len(rate_keys) > 1:
        raise ScenarioError(s.name, "stages", "give either rps (with a duration) or stages, not both")
    if not rate_keys:
        raise ScenarioError(s.name, "rps", "give a load: rps with a duration, stages, users or a drain")
    return _guarded(s, rate_keys[0], lambda: Open(_shifted(s, _rate_profile(s, own), start)))


def _guarded(s: Scenario, key: str, make: Callable[[], Load]) -> Load:
    try:
        return make()
    except ScenarioError:
        raise
    except PusherError as exc:
        raise ScenarioError.of(s.name, key, exc) from None


def _rate(s: Scenario, key: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ScenarioError(s.name, key, f"must be a number of calls per second, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(s.name, key, f"must be a number of calls per second, got {value!r}")
    return float(value)


def _whole(s: Scenario, key: str, value: Any, lowest: int, highest: int) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ScenarioError(s.name, key, f"must be a whole number in {lowest}..{highest:,}, got {value!r}")
    return value


def _think(s: Scenario) -> tuple[float, float]:
    """One duration, or a uniform range ``(low, high)`` / ``"50ms..150ms"``."""
    value = s.think if s.think is not None else 0.0
    if isinstance(value, str) and ".." in value:
        value = tuple(value.split("..", 1))
    low, high = value if isinstance(value, (tuple, list)) and len(value) == 2 else (value, value)
    try:
        low = checks.seconds("think", low, lowest=0.0, highest=3600.0, zero=True)
        high = checks.seconds("think", high, lowest=0.0, highest=3600.0, zero=True)
    except PusherError as exc:
        raise ScenarioError.of(s.name, "think", exc) from None
    if high < low:
        why = f"a range goes from low to high, got {checks.text(low)}..{checks.text(high)}"
        raise ScenarioError(s.name, "think", why)
    return (low, high)


def _users(s: Scenario, own: float | None) -> Profile:
    users = s.users
    if isinstance(users, str) and ":" in users:
        try:
            return parse_stages(users).cut(own)
        except PusherError as exc:
            raise ScenarioError(s.name, "users", f"{exc.reason} (stages of users, e.g. '10s:0-20,30s:20')") from None
    count = _whole(s, "users", users, 1, MAX_USERS)
    return Constant(count, own)


def _rate_profile(s: Scenario, own: float | None) -> Profile:
    """The scenario's rate profile from its own start (cut at its duration)."""
    if s.stages is not None:
        try:
            if isinstance(s.stages, str):
                return parse_stages(s.stages).cut(own)
            return Stages([Stage(*map(float, st)) for st in s.stages]).cut(own)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(s.name, "stages", str(exc)) from None
    rps = _rate(s, "rps", s.rps)
    if own is None:
        raise ScenarioError(s.name, "rps", "give a duration (e.g. 30s) with a constant rate")
    return Constant(rps, own)


def _shifted(s: Scenario, profile: Profile, start: float) -> Profile:
    """``profile`` on the run's clock: ``start`` seconds at 0 first."""
    if start <= 0:
        return profile
    return Stages([Stage(start, 0.0, 0.0), *profile.stages])
