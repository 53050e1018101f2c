"""A run's load from the command line: one scenario from the options (a rate, drain lanes or
users: ``load_model``), or the ``[[scenario]]`` tables of ``-c FILE`` (``scenario_spec``):
the run-level options as the base, each table one scenario (``core.scenario`` checks them),
every target resolved here first."""

from __future__ import annotations

from typing import Any

import click

from pusher_farm.cli.common import check_report_paths, duration, fail, run_settings
from pusher_farm.cli.config_file import SCENARIOS
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.core import loop as _loop
from pusher_farm.core.config import Config
from pusher_farm.core.scenario import scenario_configs, scenario_from_table
from pusher_farm.core.schedule import Constant, Profile, parse_stages
from pusher_farm.errors import PusherError

__all__ = ["load_model", "scenario_spec"]

#: run-level options that belong to each scenario instead (the file refuses them at the top)
_PER_SCENARIO = (
    "rps", "stages", "users", "think", "iterations", "url", "method", "body", "warm", "expect_status", "expect_body",
    "engine",
)  # fmt: skip


def _profile(rps: float | None, length: str | None, stages: str | None) -> tuple[Profile, float | None]:
    until = None if length is None else duration(length, "--duration")
    if stages is not None:
        if rps is not None:
            fail("give either --rps (with --duration) or --stages, not both")
        return parse_stages(stages), until
    if rps is None:
        fail("give a rate: --rps N --duration 30s, or --stages '30s:0-1000,60s:1000'")
    if until is None:
        fail("give --duration (e.g. --duration 30s) with --rps")
    return Constant(rps, until), until


def load_model(opts: dict[str, Any], *, drain: bool) -> dict[str, Any]:
    """The ``Config`` fields of the one-scenario command line's load model: a rate (``--rps``
    with ``--duration``, or ``--stages``), drain lanes' cap, or the closed model's users."""
    if drain:  # drain mode: --rps is an optional cap, --duration an optional bound
        if opts["stages"] is not None:
            fail("--drain takes a rate cap (--rps), not --stages")
        until = None if opts["duration"] is None else duration(opts["duration"], "--duration")
        profile = None if opts["rps"] is None else Constant(opts["rps"], None)
    elif opts["users"] is not None:  # the closed model: users instead of a rate
        if opts["rps"] is not None or opts["stages"] is not None:
            fail("give either a rate (--rps or --stages) or --users, not both")
        profile = None
        until = None if opts["duration"] is None else duration(opts["duration"], "--duration")
        if until is None and opts["iterations"] is None and ":" not in opts["users"]:
            fail("give --duration (or --iterations, or stages of users) with --users")
    else:
        if opts["think"] is not None or opts["iterations"] is not None:
            fail("--think and --iterations go with the closed model: give --users")
        profile, until = _profile(opts["rps"], opts["duration"], opts["stages"])
    closed: dict[str, Any] = {}
    if opts["users"] is not None:
        users = opts["users"]
        closed["users"] = parse_stages(users) if ":" in users else users
        closed["think"] = opts["think"] or 0.0
        closed["iterations"] = opts["iterations"] or 0
    return {"profile": profile, "until": until, **closed}


def scenario_spec(target: str, opts: dict[str, Any], *, check_import: bool) -> RunSpec | None:
    """The run of the config file's scenarios (None: the file has none: a run of one target)."""
    ctx = click.get_current_context()
    found = ctx.meta.get(SCENARIOS)
    if found is None:
        if target == SCENARIOS:
            fail("give a target (the config file has no [[scenario]] tables)")
        return None
    path, tables = found
    if target != SCENARIOS:
        fail(f"{path} holds [[scenario]] tables: give no target on the command line")
    for key in _PER_SCENARIO:
        if opts.get(key) is not None:
            fail(f"--{key.replace('_', '-')} belongs in each [[scenario]] table of {path}")
    if opts.get("params") or opts.get("headers") or opts.get("expect_headers"):
        fail(f"target parameters belong in each [[scenario]] table of {path}")
    if opts.get("feed") is not None:
        fail(f"a feed in a run of [[scenario]] tables is not supported yet: run that scenario on its own ({path})")
    until = None if opts["duration"] is None else duration(opts["duration"], "--duration")
    try:
        base = Config(**run_settings(opts))
        scenarios = [scenario_from_table(t, i + 1) for i, t in enumerate(tables)]
        configs = scenario_configs(scenarios, duration=until, base=base)
        spec = RunSpec(configs, scenarios=True)
    except PusherError as exc:
        fail(f"{path}: {exc.reason}")
    if opts["abort_on_fail"] and not opts["thresholds"]:
        fail("--abort-on-fail needs a --threshold to check")
    check_report_paths(opts)
    if opts["show_config"]:
        import json

        click.echo(json.dumps([c.plain() for c in configs], indent=2, default=str))
        ctx.exit(0)
    from pusher_farm.targets import builtin_names, resolve

    for c in configs:
        assert c.target is not None
        if check_import or c.target in builtin_names():
            try:
                fn = resolve(c.target, dict(c.params))
            except PusherError as exc:
                fail(f"{path}: scenario {c.name!r}, key 'target': {exc}")
            aclose = getattr(fn, "aclose", None)
            if aclose is not None:
                _loop.run(aclose())
    return spec
