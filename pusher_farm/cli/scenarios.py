"""A run of ``[[scenario]]`` tables from ``-c FILE``: the run-level options as the base, each
table as one scenario (``core.scenario`` checks them), every target resolved here first."""

from __future__ import annotations

from typing import Any

import click

from pusher_farm.cli.common import check_json_path, duration, fail
from pusher_farm.cli.config_file import SCENARIOS
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.core import loop as _loop
from pusher_farm.core.config import Config
from pusher_farm.core.scenario import scenario_configs, scenario_from_table
from pusher_farm.errors import PusherError

__all__ = ["scenario_spec"]

#: run-level options that belong to each scenario instead (the file refuses them at the top)
_PER_SCENARIO = (
    "rps", "stages", "users", "think", "iterations", "url", "method", "body", "warm", "expect_status", "expect_body",
    "engine",
)  # fmt: skip


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
        base = Config(
            overtime=opts["overtime"],
            timeout=opts["timeout"],
            max_names=opts["max_names"],
            window=opts["window"],
            spin=opts["spin"],
            batch=opts["batch"],
            on_agent_loss=opts["on_agent_loss"],
            late_join=opts["late_join"],
            thresholds=tuple(opts["thresholds"]),
            abort_on_fail=opts["abort_on_fail"],
            abort_when_generator_limited=opts["abort_when_generator_limited"],
        )
        scenarios = [scenario_from_table(t, i + 1) for i, t in enumerate(tables)]
        configs = scenario_configs(scenarios, duration=until, base=base)
        spec = RunSpec(configs, scenarios=True)
    except PusherError as exc:
        fail(f"{path}: {exc.reason}")
    if opts["abort_on_fail"] and not opts["thresholds"]:
        fail("--abort-on-fail needs a --threshold to check")
    files = (("--json", "json_path"), ("--csv", "csv_path"), ("--hdr-log", "hdr_log"), ("--html", "html_path"))
    for option, key in files:
        check_json_path(opts[key], option)
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
