"""``farm run``, ``farm coordinator`` and ``farm demo``: the commands that send load.

Options become one ``Config`` (which checks every value: durations, ranges, policies), so the
command line, the Python API and the agents agree on what a setting means.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from pusher_farm.cli.common import (
    check_report_paths,
    duration,
    fail,
    finish,
    run_settings,
    setup_logging,
    stop_on_signals,
    watch,
)
from pusher_farm.cli.config_file import config_option
from pusher_farm.cli.items import item_options, item_settings
from pusher_farm.cli.scenarios import load_model, scenario_spec
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.cluster.state import Timing
from pusher_farm.core import loop as _loop
from pusher_farm.core.config import DEFAULT_OVERTIME, LOSS_POLICIES, Config
from pusher_farm.items.local import open_items
from pusher_farm.targets.http_template import has_placeholders

__all__ = ["coordinator", "run"]


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--param {pair!r} must look like key=value")
        out[key] = value
    return out


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The load options shared by ``run`` and ``coordinator``."""
    options = [
        config_option(),
        click.argument("target"),
        click.option("--rps", type=float, help="Total calls per second (constant rate)."),
        click.option("--duration", "-d", help="How long, e.g. 30s, 5m, 1h30m."),
        click.option(
            "--stages",
            help="A rate profile instead of --rps: DURATION:RATE or DURATION:FROM-TO, comma-separated, "
            "e.g. '30s:0-1000,60s:1000,10s:1000-0'.",
        ),
        click.option(
            "--users",
            help="Closed model instead of a rate: this many users, each calling the target back to back (or "
            "stages of users, e.g. '10s:0-50,30s:50'). Latency is then service time.",
        ),
        click.option("--think", help="Closed model: pause after each call of a user, e.g. 90ms or 50ms..150ms."),
        click.option("--iterations", help="Closed model: calls per user (the run ends when every user made them)."),
        click.option(
            "--overtime",
            default=str(DEFAULT_OVERTIME),
            show_default=True,
            help="Most calls in flight per process; a slot that finds them all busy is canceled (0 cancels all).",
        ),
        click.option(
            "--max-names",
            default="1000",
            show_default=True,
            help="Distinct call names kept in the report's rows by name; calls past them count under 'other'.",
        ),
        click.option("--timeout", default="30s", show_default=True, help="Per-call bound ('none' for no bound)."),
        click.option("--window", default="1s", show_default=True, help="Report window (time series step)."),
        click.option(
            "--spin",
            default="0",
            help="Busy-wait this long before each slot for sub-millisecond start times (costs a core), e.g. 2ms.",
        ),
        click.option(
            "--batch",
            default="4ms",
            show_default=True,
            help="Launch every slot due within this long of a wake-up with it, up to this early "
            "(fewer wake-ups, less CPU per call; their latency counts from their actual start). "
            "0 for one wake-up per slot.",
        ),
        click.option("--param", "params", multiple=True, metavar="K=V", help="A target parameter (repeatable)."),
        click.option("--url", help="URL for the http target."),
        click.option("--method", help="HTTP method for the http target (default GET)."),
        click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="HTTP header (repeatable)."),
        click.option("--body", help="HTTP request body."),
        click.option(
            "--warm",
            type=int,
            help="Connections each agent opens before the run starts (http target, lean engine): the measured "
            "run begins with a warm pool.",
        ),
        click.option(
            "--expect-status",
            metavar="CODES",
            help="Statuses that pass, e.g. 200,204 or 200-299 (http target; default: any 2xx). Others fail as "
            "'Check status N'.",
        ),
        click.option("--expect-body", metavar="TEXT", help="Text the response body must contain (http target)."),
        click.option(
            "--expect-header",
            "expect_headers",
            multiple=True,
            metavar="'NAME: VALUE'",
            help="A header the response must have, with this value (http target; repeatable).",
        ),
        click.option(
            "--engine",
            type=click.Choice(["lean", "aiohttp"]),
            help="HTTP engine for the http target: lean (the default: HTTP/1.1 keep-alive, several times faster) "
            "or aiohttp (when the load needs redirects, cookies or a proxy).",
        ),
        click.option(
            "--json", "json_path", type=click.Path(dir_okay=False), help="Write the JSON report here ('-': stdout)."
        ),
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the per-window series here."),
        click.option(
            "--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report here."
        ),
        click.option(
            "--hdr-log",
            type=click.Path(dir_okay=False),
            help="Write each window's latency histogram here, in HdrHistogram's interval log format.",
        ),
        click.option(
            "--abort-when-generator-limited",
            is_flag=True,
            help="Stop a run that measures the generator itself (schedule lag p99 over 10 ms or slots canceled, "
            "two windows in a row).",
        ),
        click.option(
            "--http",
            "http_address",
            metavar="HOST:PORT",
            help="Serve the run's state and Prometheus metrics here (GET /farm, /agents, /metrics); off by default.",
        ),
        click.option("--http-token", help="A bearer token the HTTP side asks for (needed beyond loopback)."),
        click.option("-q", "--quiet", is_flag=True, help="No live progress lines."),
        click.option(
            "--on-agent-loss",
            type=click.Choice(LOSS_POLICIES),
            default="rebalance",
            show_default=True,
            help="An agent silent past the timeout: move its share to the others, stop the run, or go on.",
        ),
        click.option(
            "--late-join/--no-late-join",
            default=True,
            show_default=True,
            help="Give an agent that connects mid-run a share from the next epoch.",
        ),
        click.option(
            "--agent-timeout",
            default="3s",
            show_default=True,
            help="Silence after which an agent is lost (heartbeats go every third of it, at most 1 s).",
        ),
        *item_options(),
        click.option(
            "--threshold",
            "thresholds",
            multiple=True,
            metavar="'METRIC OP VALUE'",
            help="A pass/fail criterion on the merged run, e.g. 'p99<250ms', 'error_rate<1%', "
            "'achieved_rps>=0.99*requested' (repeatable). A failed one exits 99.",
        ),
        click.option(
            "--abort-on-fail", is_flag=True, help="Stop the run as soon as a threshold fails (checked each window)."
        ),
        click.option(
            "--show-config",
            is_flag=True,
            help="Print the run's settings as JSON (after the file, the environment and the flags) and exit.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _config(target: str, opts: dict[str, Any], *, check_import: bool) -> Config:
    """The run the options describe, every value checked before any process starts."""
    from pusher_farm.targets import builtin_names, resolve

    items = item_settings(opts)
    if opts["abort_on_fail"] and not opts["thresholds"]:
        fail("--abort-on-fail needs a --threshold to check")
    model = load_model(opts, drain=bool(items.get("parallel")))
    params = _params(opts["params"])
    for key in ("url", "method", "body", "engine", "warm", "expect_status", "expect_body"):
        if opts[key] is not None:
            params[key] = opts[key]
    if opts["headers"]:
        params["headers"] = list(opts["headers"])
    if opts["expect_headers"]:
        params["expect_header"] = list(opts["expect_headers"])
    config = Config(
        target=target,
        params=params,
        **model,
        **run_settings(opts),
        **items,
    )
    check_report_paths(opts)
    texts = [opts["url"], opts["body"], *(h.partition(":")[2] for h in opts["headers"])]
    if target == "http" and config.feed is None and has_placeholders(*texts):
        fail("--url, --header or --body has {field} placeholders: give a --feed whose items fill them")
    if config.feed is not None:
        feed, handlers = open_items(config)  # the feed and the files: one line now, not after agents start
        handlers.close()
        feed.close()
    if opts["show_config"]:
        click.echo(json.dumps(config.plain(), indent=2, default=str))
        sys.exit(0)
    if check_import or target in builtin_names():
        fn = resolve(target, params)  # fails here, with one line, rather than on every agent
        aclose = getattr(fn, "aclose", None)
        if aclose is not None:
            _loop.run(aclose())
    return config


def _control(opts: dict[str, Any]) -> Any:
    """The HTTP side ``--http`` asks for, serving already (None: not asked)."""
    if opts["http_address"] is None:
        if opts["http_token"]:
            fail("--http-token goes with --http HOST:PORT")
        return None
    from pusher_farm.cluster.control import ControlServer, parse_address
    from pusher_farm.report.dashboard import page
    from pusher_farm.report.metrics import render_metrics

    host, port = parse_address(opts["http_address"], opts["http_token"])
    server = ControlServer(host, port, opts["http_token"], render=render_metrics, page=page())
    bound = server.start()
    click.echo(f"live page on http://{host}:{bound}/ (state: /farm, /agents, /metrics)", err=True)
    return server


def _finish(report: Any, opts: dict[str, Any]) -> None:
    """Write what the options ask for, print the summary, exit with the run's status."""
    finish(report, opts["json_path"], opts["quiet"], csv_path=opts["csv_path"], hdr_log=opts["hdr_log"],
           html_path=opts["html_path"])  # fmt: skip
    sys.exit(report.status)


def _stop_on_signals(coord: Any) -> None:
    stop_on_signals(
        lambda abort: coord.stop(abort=abort),
        first="stopping: waiting for calls in flight (Ctrl-C again to abort them)",
        second="aborting: calls in flight are canceled",
    )


def _timing(opts: dict[str, Any], wait: float) -> Timing:
    agent_timeout = duration(opts["agent_timeout"], "--agent-timeout")
    return Timing(heartbeat=min(1.0, agent_timeout / 3), agent_timeout=agent_timeout, wait_timeout=wait)


@click.command()
@run_options
@click.option(
    "-p",
    "--processes",
    type=int,
    default=None,
    help="Local agent processes sharing the rate (default: one per core).",
)
def run(target: str, processes: int | None, **opts: Any) -> None:
    """Run TARGET (noop, sleep, http or package.module:function) on this host.

    The total rate is shared by N local agent processes under a coordinator on loopback: the
    same path as `farm coordinator` with agents on many hosts.

    \\b
    Examples:
      farm run noop --rps 1000 --duration 10s
      farm run http --url http://127.0.0.1:8080/ --rps 200 --duration 30s --json report.json
      farm run sleep --param ms=20 --stages '10s:0-500,20s:500,5s:500-0' -p 2
    """
    from pusher_farm.cluster.local import run_local

    n = (os.cpu_count() or 1) if processes is None else processes
    if n < 1 or n > 1024:
        fail(f"--processes must be between 1 and 1024, got {n}")
    spec = scenario_spec(target, opts, check_import=True) or RunSpec((_config(target, opts, check_import=True),))
    timing = _timing(opts, 30.0)
    setup_logging(opts["quiet"])
    control = _control(opts)
    listeners, view = watch(opts["quiet"])

    def started(coord: Any) -> None:
        _stop_on_signals(coord)
        if view is not None:
            view.attach(coord)

    try:
        report = run_local(spec, n, listeners=listeners, timing=timing, on_coordinator=started, control=control)
    finally:
        if view is not None:
            view.stop()
    _finish(report, opts)


@click.command()
@run_options
@click.option("--bind", default="tcp://127.0.0.1:5555", show_default=True, help="Where agents connect.")
@click.option("--expect-agents", "-n", "expect", type=int, required=True, help="Agents to wait for.")
@click.option("--wait", "wait", default="60s", show_default=True, help="How long to wait for them.")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), help="CURVE keys folder (farm keys generate).")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --bind without keys.")
def coordinator(
    target: str, bind: str, expect: int, wait: str, keys_dir: str | None, insecure: bool, **opts: Any
) -> None:
    """Run TARGET on agents that connect to --bind, sharing the total rate among them.

    \\b
    Example (three shells):
      farm coordinator noop --rps 2000 --duration 10s --expect-agents 2
      farm agent --connect tcp://127.0.0.1:5555
      farm agent --connect tcp://127.0.0.1:5555
    """
    from pusher_farm.cluster.coordinator import Coordinator
    from pusher_farm.cluster.security import CoordinatorKeys

    if expect < 1:
        fail(f"--expect-agents must be at least 1, got {expect}")
    wait_s = duration(wait, "--wait")
    spec = scenario_spec(target, opts, check_import=False) or RunSpec((_config(target, opts, check_import=False),))
    timing = _timing(opts, wait_s)
    keys = None if keys_dir is None else CoordinatorKeys.load(keys_dir)
    setup_logging(opts["quiet"])
    control = _control(opts)
    listeners: list[Any] = []
    view = None
    try:
        with Coordinator(
            spec,
            bind=bind,
            expect=expect,
            timing=timing,
            listeners=[lambda w: [f(w) for f in listeners]],
            keys=keys,
            insecure=insecure,
            control=control,
        ) as coord:
            click.echo(f"coordinator on {coord.endpoint}: waiting for {expect} agent(s)", err=True)
            _stop_on_signals(coord)
            shown, view = watch(opts["quiet"])
            listeners.extend(shown)
            if view is not None:
                view.attach(coord)
            report = coord.run()
    finally:
        if view is not None:
            view.stop()
    _finish(report, opts)
