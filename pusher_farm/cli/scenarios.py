"""A run from the command line: the options of ``farm run`` / ``farm coordinator`` as one
scenario (the keys of a ``[[scenario]]`` table, spelled as the options), or the
``[[scenario]]`` tables of ``-c FILE`` with the options as the run's settings. The library
builds and checks the run (``core.scenario``); this module only passes the option values on and
maps a refusal to one usage line naming the option (or the file and the scenario)."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from pusher_farm.cli.common import check_report_paths, fail
from pusher_farm.cli.config_file import SCENARIOS
from pusher_farm.core.config import Config
from pusher_farm.core.run import Run
from pusher_farm.core.scenario import SCENARIO_KEYS, ScenarioError, build_run, scenario_from_table
from pusher_farm.errors import PusherError

__all__ = ["RUN_OPTIONS", "command_run"]

#: the options that set the run's own settings (each scenario's defaults too), as Config fields
RUN_OPTIONS = ("overtime", "timeout", "max_names", "window", "spin", "batch", "on_agent_loss", "late_join",
               "abort_on_fail", "abort_when_generator_limited")  # fmt: skip
#: option names (click's) of the scenario keys that differ from them
_OPTION_OF = {"header": "headers", "expect_header": "expect_headers", "failure_handler": "failure_handlers"}
#: how a refusal names a scenario key on the command line
_SPELLED = {"target": "TARGET", "params": "--param", "headers": "--header", "expect_header": "--expect-header",
            "failure_handlers": "--failure-handler", "duration": "--duration"}  # fmt: skip


def _settings(opts: dict[str, Any]) -> Config:
    """The run's own settings: the options given (the library's defaults for the rest)."""
    given = {key: opts[key] for key in RUN_OPTIONS if opts.get(key) is not None}
    return Config(**given, thresholds=tuple(opts.get("thresholds") or ()))


def _table(target: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The command line's one scenario as a ``[[scenario]]`` table (the options given)."""
    table: dict[str, Any] = {"name": "default", "target": target}
    params: dict[str, Any] = {}
    for pair in opts.get("params") or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--param {pair!r} must look like key=value")
        params[key] = value
    table["params"] = params
    for key in SCENARIO_KEYS:
        if key in ("name", "target", "params", "duration", *RUN_OPTIONS):
            continue
        value = opts.get(_OPTION_OF.get(key, key))
        if value is None or value is False or (isinstance(value, (tuple, list)) and not value):
            continue  # not given: the library's default
        table[key] = list(value) if isinstance(value, tuple) else value
    return table


def _refused(exc: PusherError, path: str | None) -> NoReturn:
    if path is not None:
        fail(f"{path}: {exc.reason}")
    if isinstance(exc, ScenarioError):
        option = _SPELLED.get(exc.key, "--" + exc.key.replace("_", "-"))
        why = f"{exc.cause}: {exc.why}" if exc.cause else exc.why
        fail(why if option == "TARGET" else f"{option}: {why}")
    fail(str(exc))


def command_run(target: str, opts: dict[str, Any], *, here: bool) -> Run:
    """The run a command's options (and its ``-c`` file's scenarios) describe, every value
    checked and every target built here first (``here``: its agents run on this host; else
    only the built-ins), before any process starts."""
    from pusher_farm.targets import check_run

    ctx = click.get_current_context()
    found = ctx.meta.get(SCENARIOS)
    path = None
    if found is None:
        if target == SCENARIOS:
            fail("give a target (the config file has no [[scenario]] tables)")
        scenarios = [_table(target, opts)]
    else:
        path, scenarios = found
        if target != SCENARIOS:
            fail(f"{path} holds [[scenario]] tables: give no target on the command line")
        for key in _table("-", opts):
            if key not in ("name", "target", "params"):
                fail(f"--{key.replace('_', '-')} belongs in each [[scenario]] table of {path}")
        if opts.get("params"):
            fail(f"target parameters belong in each [[scenario]] table of {path}")
    try:
        run = build_run([scenario_from_table(t, i + 1) for i, t in enumerate(scenarios)], duration=opts["duration"],
                        settings=_settings(opts))  # fmt: skip
        check_report_paths(opts)
        if opts["show_config"]:
            plain = [c.plain() for c in run]
            click.echo(json.dumps(plain[0] if found is None else plain, indent=2, default=str))
            sys.exit(0)
        check_run(run, here=here)
    except PusherError as exc:
        _refused(exc, path)
    return run
