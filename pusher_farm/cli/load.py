"""``farm run`` and ``farm coordinator``: the commands that send load.

The options are a run's one scenario (or, with ``-c FILE``, its ``[[scenario]]`` tables) and its
settings; the library builds and checks the run (``cli.scenarios``), so the command line, a
TOML file, ``FARM_*`` variables and the Python API agree on what every setting means. An option
left out takes the library's default (shown in ``--help``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from pusher_farm.cli.common import duration, fail, finish, setup_logging, stop_on_signals, watch
from pusher_farm.cli.config_file import config_option
from pusher_farm.cli.item_options import item_options
from pusher_farm.cli.scenarios import command_run
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.config import DEFAULT_BATCH, DEFAULT_OVERTIME, DEFAULT_TIMEOUT, DEFAULT_WINDOW
from pusher_farm.core.setting_checks import DEFAULT_MAX_NAMES, LOSS_POLICIES, text
from pusher_farm.pusher import MAX_LOCAL_AGENTS

__all__ = ["coordinator", "run"]


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
            show_default=str(DEFAULT_OVERTIME),
            help="Most calls in flight per process; a slot that finds them all busy is canceled (0 cancels all).",
        ),
        click.option(
            "--max-names",
            show_default=str(DEFAULT_MAX_NAMES),
            help="Distinct call names kept in the report's rows by name; calls past them count under 'other'.",
        ),
        click.option("--timeout", show_default=text(DEFAULT_TIMEOUT), help="Per-call bound ('none' for no bound)."),
        click.option("--window", show_default=text(DEFAULT_WINDOW), help="Report window (time series step)."),
        click.option(
            "--spin",
            help="Busy-wait this long before each slot for sub-millisecond start times (costs a core), e.g. 2ms.",
        ),
        click.option(
            "--batch",
            show_default=text(DEFAULT_BATCH),
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
            show_default=LOSS_POLICIES[0],
            help="An agent silent past the timeout: move its share to the others, stop the run, or go on.",
        ),
        click.option(
            "--late-join/--no-late-join",
            default=None,
            show_default="late join",
            help="Give an agent that connects mid-run a share from the next epoch.",
        ),
        click.option(
            "--agent-timeout",
            show_default=text(Timing().agent_timeout),
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


def _control(opts: dict[str, Any]) -> Any:
    """The HTTP side ``--http`` asks for, serving already (None: not asked)."""
    if opts["http_address"] is None:
        if opts["http_token"]:
            fail("--http-token goes with --http HOST:PORT")
        return None
    from pusher_farm.errors import PusherError
    from pusher_farm.report.serving import serve_control

    try:
        server = serve_control(opts["http_address"], opts["http_token"])
    except PusherError as exc:
        fail(f"--http {opts['http_address']}: {exc.reason}")
    click.echo(f"live page on http://{server.host}:{server.port}/ (state: /farm, /agents, /herd, /metrics)", err=True)
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
    if opts["agent_timeout"] is None:
        return Timing(wait_timeout=wait)
    return Timing(agent_timeout=duration(opts["agent_timeout"], "--agent-timeout"), wait_timeout=wait)


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
    from pusher_farm.cluster.spawn import run_local

    n = (os.cpu_count() or 1) if processes is None else processes
    if not 1 <= n <= MAX_LOCAL_AGENTS:
        fail(f"--processes must be between 1 and {MAX_LOCAL_AGENTS}, got {n}")
    run_ = command_run(target, opts, here=True)
    timing = _timing(opts, 30.0)
    setup_logging(opts["quiet"])
    control = _control(opts)
    listeners, view = watch(opts["quiet"])

    def started(coord: Any) -> None:
        _stop_on_signals(coord)
        if view is not None:
            view.attach(coord)

    try:
        report = run_local(run_, n, listeners=listeners, timing=timing, on_coordinator=started, control=control)
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
    from pusher_farm.cluster.coordinator.coordinator import Coordinator
    from pusher_farm.cluster.transport.security import CoordinatorKeys

    if expect < 1:
        fail(f"--expect-agents must be at least 1, got {expect}")
    wait_s = duration(wait, "--wait")
    run_ = command_run(target, opts, here=False)
    timing = _timing(opts, wait_s)
    keys = None if keys_dir is None else CoordinatorKeys.load(keys_dir)
    setup_logging(opts["quiet"])
    control = _control(opts)
    listeners: list[Any] = []
    view = None
    try:
        with Coordinator(
            run_,
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
            report = coord.serve()
    finally:
        if view is not None:
            view.stop()
    _finish(report, opts)
