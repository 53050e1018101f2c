"""Scenarios: several named workloads in one run, each with its own target and load model.

A ``Scenario`` says what one workload does (k6's scenarios, Locust's user classes): its target
and parameters, and one load model:

* open: ``rps`` (constant-arrival-rate) or ``stages`` (ramping-arrival-rate);
* closed: ``users`` (a number: constant-vus; stages of users: ramping-vus), each user looping
  on the target with an optional ``think`` time, ``iterations`` calls per user if given
  (per-vu-iterations);

starting ``start`` seconds into the run and lasting ``duration`` (default: to the run's end).
``scenario_configs`` turns them into one checked ``Config`` each; a farm shards every scenario
among its agents on the scenario's own global slot numbers (or users), so per-scenario counts
add up exactly. Bad input is refused with one line naming the scenario and the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pusher_farm.core.config import Config
from pusher_farm.core.schedule import Constant, Profile, Stage, Stages, parse_duration, parse_stages
from pusher_farm.errors import InvalidOption, PusherError

__all__ = ["SCENARIO_KEYS", "Scenario", "scenario_configs", "scenario_from_table"]

#: the http target's options a scenario may give as keys of its own (as on the command line)
_HTTP_KEYS = ("url", "method", "body", "engine", "warm", "expect_status", "expect_body")
#: work-item keys a scenario does not take yet (a run has one feed: run such a workload alone)
_NOT_YET = ("feed", "drain", "parallel", "max_retries", "retry_delay", "feed_cycle", "results", "dead_letter")
#: the keys of a ``[[scenario]]`` table
SCENARIO_KEYS = (
    "name", "target", "params", "rps", "stages", "users", "think", "iterations", "start", "duration",
    "overtime", "timeout", "batch", "spin", "max_names", "header", "expect_header", *_HTTP_KEYS,
)  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    """One named workload of a run (see the module docstring). ``target`` is a built-in or
    ``package.module:function`` name (or such a function): agents resolve it on their own host."""

    name: str
    target: Any
    rps: float | None = None
    stages: str | Sequence[Any] | None = None
    users: int | str | None = None
    think: Any = 0.0
    iterations: int = 0
    start: Any = 0.0
    duration: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    overtime: int | None = None
    timeout: Any = "default"
    batch: Any = None
    spin: Any = None
    max_names: int | None = None


class _Refused(InvalidOption):
    pass


def _refuse(name: str, key: str, reason: str) -> _Refused:
    return _Refused(f"scenario {name!r}, key {key!r}: {reason}")


def scenario_from_table(table: Any, position: int) -> Scenario:
    """The scenario a ``[[scenario]]`` table (a mapping) describes; ``InvalidOption`` naming
    the scenario and the key for anything not valid."""
    if not isinstance(table, Mapping):
        raise InvalidOption(f"scenario #{position}: each [[scenario]] must be a table of keys")
    name = table.get("name")
    label = name if isinstance(name, str) and name else f"#{position}"
    if not isinstance(name, str) or not name:
        raise _refuse(label, "name", 'every scenario needs a name, e.g. name = "browse"')
    for key in table:
        if key in _NOT_YET:
            raise _refuse(label, key, "work items in a [[scenario]] are not supported yet: run that workload on its "
                          "own (farm run TARGET --feed FILE ...)")  # fmt: skip
        if key not in SCENARIO_KEYS:
            raise _refuse(label, key, f"unknown key (a scenario's keys: {', '.join(sorted(SCENARIO_KEYS))})")
    target = table.get("target")
    if not isinstance(target, str) or not target:
        raise _refuse(label, "target", 'give the scenario a target, e.g. target = "http"')
    if not isinstance(table.get("params", {}), Mapping):
        raise _refuse(label, "params", "must be a table of the target's parameters")
    params = dict(table.get("params") or {})
    for key in _HTTP_KEYS:
        if key in table:
            params[key] = table[key]
    for key, param in (("header", "headers"), ("expect_header", "expect_header")):
        if key in table:
            value = table[key]
            params[param] = list(value) if isinstance(value, list) else [value]
    own = ("name", "target", "params")
    values = {k: table[k] for k in table if k in Scenario.__dataclass_fields__ and k not in own}
    return Scenario(name=name, target=target, params=params, **values)


def _seconds(s: Scenario, key: str, value: Any, *, zero: bool = False) -> float:
    try:
        return parse_duration(value, allow_zero=zero)
    except PusherError as exc:
        raise _refuse(s.name, key, exc.reason) from None


def _each(s: Scenario, changes: dict[str, Any]) -> None:
    """Check every setting on its own, so a bad one is named by its key."""
    checks = {f.name: f.metadata["check"] for f in fields(Config)}
    for key, value in changes.items():
        try:
            checks[key](value)
        except PusherError as exc:
            raise _refuse(s.name, "start" if key == "start" else key, exc.reason) from None
        except (TypeError, ValueError) as exc:
            raise _refuse(s.name, key, f"not a valid value ({exc})") from None


def _config(s: Scenario, run_s: float | None, base: Config) -> Config:
    """``s`` as a checked ``Config`` (a run's settings in ``base``; ``run_s``: its length)."""
    if not isinstance(s, Scenario):
        raise InvalidOption(f"a run's scenarios must be Scenario records, got {s!r}")
    start = _seconds(s, "start", s.start, zero=True)
    if run_s is not None and start >= run_s:
        raise _refuse(s.name, "start", f"{start:g}s is past the run's end ({run_s:g}s): start it earlier")
    own = None if s.duration is None else _seconds(s, "duration", s.duration)
    if own is None and run_s is not None:
        own = run_s - start
    elif own is not None and run_s is not None:
        own = min(own, run_s - start)
    rate_keys = [k for k in ("rps", "stages") if getattr(s, k) is not None]
    if len(rate_keys) > 1:
        raise _refuse(s.name, "stages", "give either rps or stages, not both")
    if rate_keys and s.users is not None:
        raise _refuse(s.name, "users", f"a scenario has either a rate ({rate_keys[0]}) or users, not both")
    changes: dict[str, Any] = {"name": s.name, "target": s.target, "params": dict(s.params), "start": start}
    for key in ("overtime", "batch", "spin", "max_names"):
        if getattr(s, key) is not None:
            changes[key] = getattr(s, key)
    if s.timeout != "default":
        changes["timeout"] = s.timeout
    _each(s, changes)
    try:
        if s.users is not None:
            closed = {"users": _users(s), "think": s.think, "iterations": s.iterations}
            _each(s, closed)
            changes.update(closed, until=own)
        else:
            if s.think not in (0, 0.0, "0", None):
                raise _refuse(s.name, "think", "think time needs the closed model (users), not a rate")
            if s.iterations:
                raise _refuse(s.name, "iterations", "iterations need the closed model (users)")
            if not rate_keys:
                raise _refuse(s.name, "rps", "give the scenario a load: rps, stages or users")
            changes["profile"] = _open_profile(s, start, own)
            changes["until"] = None if own is None else start + own
        return base.replace(**changes)
    except _Refused:
        raise
    except PusherError as exc:
        key = _key_of(exc.reason, s)
        raise _refuse(s.name, key, exc.reason.removeprefix(f"scenario {s.name!r}: ")) from None


def _key_of(message: str, s: Scenario) -> str:
    for key in ("overtime", "timeout", "think", "iterations", "users", "batch", "spin", "max_names", "params"):
        if key in message:
            return key
    return "stages" if s.stages is not None else "rps" if s.rps is not None else "users"


def _users(s: Scenario) -> Profile | int:
    if isinstance(s.users, str) and not s.users.strip().isdigit():
        try:
            return parse_stages(s.users)
        except PusherError as exc:
            raise _refuse(s.name, "users", f"{exc.reason} (stages of users, e.g. '10s:0-20,30s:20')") from None
    return s.users  # type: ignore[return-value]


def _open_profile(s: Scenario, start: float, own: float | None) -> Profile:
    """The scenario's rate profile on the run's clock: ``start`` seconds at rate 0, then its
    rate or stages (cut at its duration)."""
    try:
        if s.stages is not None:
            profile: Profile = parse_stages(s.stages) if isinstance(s.stages, str) else Stages(
                [Stage(*map(float, st)) for st in s.stages])  # fmt: skip
        else:
            if isinstance(s.rps, bool) or not isinstance(s.rps, (int, float)):
                raise _refuse(s.name, "rps", f"must be a number of calls per second, got {s.rps!r}")
            if own is None:
                raise _refuse(s.name, "duration", "give the scenario (or the run) a duration")
            profile = Constant(s.rps, own)
    except _Refused:
        raise
    except (PusherError, TypeError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, PusherError) else str(exc)
        raise _refuse(s.name, "stages" if s.stages is not None else "rps", reason) from None
    if start <= 0:
        return profile
    stages = [Stage(start, 0.0, 0.0), *profile.stages]
    if math.isinf(stages[-1].duration):
        raise _refuse(s.name, "duration", "a scenario that starts later needs a duration")
    return Stages(stages)


def scenario_configs(scenarios: Sequence[Scenario], *, duration: float | None, base: Config) -> tuple[Config, ...]:
    """One checked ``Config`` per scenario, on ``base``'s run settings (window, thresholds,
    policies); ``duration`` is the run's length (None: each scenario's own)."""
    if not scenarios:
        raise InvalidOption("a run of scenarios needs at least one [[scenario]]")
    seen: set[str] = set()
    for s in scenarios:
        name = getattr(s, "name", None)
        if name in seen:
            raise _refuse(str(name), "name", "two scenarios have this name: give each its own")
        seen.add(str(name))
    return tuple(_config(s, duration, base) for s in scenarios)
