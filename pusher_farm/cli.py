"""The ``farm`` command: thin click wrappers over the library.

Usage errors print one line (``farm: error: ...``) and exit with status 2, before any load.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
import zmq

from pusher_farm.cluster.plan import RunSpec, Task
from pusher_farm.cluster.state import Timing
from pusher_farm.core import loop as _loop
from pusher_farm.core.config import (
    DEFAULT_OVERTIME,
    with_batch,
    with_overtime,
    with_spin,
    with_timeout,
)
from pusher_farm.core.report import Report
from pusher_farm.core.schedule import Constant, Profile, parse_duration, parse_stages
from pusher_farm.core.window import Window
from pusher_farm.core.worker import hire
from pusher_farm.errors import PusherError

EXIT_USAGE = 2


class _Usage(Exception):
    """A usage error raised inside a command, reported as one line with exit status 2."""


def _fail(message: str) -> NoReturn:
    raise _Usage(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pusher-farm")
def cli() -> None:
    """pusher-farm: exact open-loop load from one laptop to many hosts."""


def _duration_or_none(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    if text.strip().lower() in ("none", "off", "0"):
        return None
    try:
        return parse_duration(text)
    except PusherError as exc:
        _fail(f"{what}: {exc.reason}")


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--param {pair!r} must look like key=value")
        out[key] = value
    return out


def _profile(rps: float | None, duration: str | None, stages: str | None) -> tuple[Profile, float | None]:
    until = None
    if duration is not None:
        until = _duration_or_none(duration, "--duration")
        if until is None:
            _fail("--duration must be positive, e.g. --duration 30s")
    if stages is not None:
        if rps is not None:
            _fail("give either --rps (with --duration) or --stages, not both")
        return parse_stages(stages), until
    if rps is None:
        _fail("give a rate: --rps N --duration 30s, or --stages '30s:0-1000,60s:1000'")
    if until is None:
        _fail("give --duration (e.g. --duration 30s) with --rps")
    return Constant(rps, until), until


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The load options shared by ``run`` and ``coordinator``."""
    options = [
        click.argument("target"),
        click.option("--rps", type=float, help="Total calls per second (constant rate)."),
        click.option("--duration", "-d", help="How long, e.g. 30s, 5m, 1h30m."),
        click.option(
            "--stages",
            help="A rate profile instead of --rps: DURATION:RATE or DURATION:FROM-TO, comma-separated, "
            "e.g. '30s:0-1000,60s:1000,10s:1000-0'.",
        ),
        click.option(
            "--overtime",
            type=int,
            default=DEFAULT_OVERTIME,
            show_default=True,
            help="Most calls in flight; a slot that finds them all busy is canceled (0 cancels all).",
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
            "--engine",
            type=click.Choice(["lean", "aiohttp"]),
            help="HTTP engine for the http target: lean (the default: HTTP/1.1 keep-alive, several times faster) "
            "or aiohttp (when the load needs redirects, cookies or a proxy).",
        ),
        click.option(
            "--json", "json_path", type=click.Path(dir_okay=False), help="Write the JSON report here ('-': stdout)."
        ),
        click.option("-q", "--quiet", is_flag=True, help="No live progress lines."),
        click.option(
            "--on-agent-loss",
            type=click.Choice(["rebalance", "abort", "continue"]),
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
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _target_params(
    params: tuple[str, ...],
    url: str | None,
    method: str | None,
    headers: tuple[str, ...],
    body: str | None,
    engine: str | None = None,
) -> dict[str, Any]:
    out = _params(params)
    for key, value in (("url", url), ("method", method), ("body", body), ("engine", engine)):
        if value is not None:
            out[key] = value
    if headers:
        out["headers"] = list(headers)
    return out


def _check_json_path(path: str | None) -> None:
    if path is None or path == "-":
        return
    from pathlib import Path

    parent = Path(path).resolve().parent
    if not parent.is_dir():
        _fail(f"--json {path}: folder {parent} does not exist")


def _spec(target: str, opts: dict[str, Any], *, check_import: bool) -> RunSpec:
    """The run the options describe, every option checked before any process starts."""
    from pusher_farm.targets import builtin_names, resolve

    profile, until = _profile(opts["rps"], opts["duration"], opts["stages"])
    timeout_s = _duration_or_none(opts["timeout"], "--timeout")
    window_s = _duration_or_none(opts["window"], "--window")
    if window_s is None:
        _fail("--window must be positive, e.g. --window 1s")
    spin_s = _duration_or_none(opts["spin"], "--spin") or 0.0
    batch_s = _duration_or_none(opts["batch"], "--batch") or 0.0
    with_overtime(opts["overtime"]), with_timeout(timeout_s), with_spin(spin_s), with_batch(batch_s)  # validate
    _check_json_path(opts["json_path"])
    params = _target_params(opts["params"], opts["url"], opts["method"], opts["headers"], opts["body"], opts["engine"])
    if check_import or target in builtin_names():
        fn = resolve(target, params)  # fails here, with one line, rather than on every agent
        aclose = getattr(fn, "aclose", None)
        if aclose is not None:
            _loop.run(aclose())
    task = Task(target, params, profile, opts["overtime"], timeout_s, spin_s, batch_s)
    return RunSpec(
        (task,), until=until, window=window_s, on_agent_loss=opts["on_agent_loss"], late_join=opts["late_join"]
    )


def _timing(opts: dict[str, Any], wait: float) -> Timing:
    agent_timeout = _duration_or_none(opts["agent_timeout"], "--agent-timeout")
    if agent_timeout is None:
        _fail("--agent-timeout must be positive, e.g. --agent-timeout 3s")
    return Timing(heartbeat=min(1.0, agent_timeout / 3), agent_timeout=agent_timeout, wait_timeout=wait)


def _progress(quiet: bool) -> list[Callable[[Window], None]]:
    from pusher_farm.report import progress_line

    return [] if quiet else [lambda w: click.echo(progress_line(w), err=True)]


def _stop_on_signals(stop: Callable[[bool], None]) -> None:
    """First Ctrl-C/SIGTERM: stop scheduling and report; second: abort calls in flight."""
    hits = 0

    def handler(signum: int, frame: object) -> None:
        nonlocal hits
        hits += 1
        if hits == 1:
            click.echo("stopping: waiting for calls in flight (Ctrl-C again to abort)", err=True)
        stop(hits > 1)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@cli.command()
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

    \b
    Examples:
      farm run noop --rps 1000 --duration 10s
      farm run http --url http://127.0.0.1:8080/ --rps 200 --duration 30s --json report.json
      farm run sleep --param ms=20 --stages '10s:0-500,20s:500,5s:500-0' -p 2
    """
    from pusher_farm.cluster.local import run_local

    n = (os.cpu_count() or 1) if processes is None else processes
    if n < 1 or n > 1024:
        _fail(f"--processes must be between 1 and 1024, got {n}")
    spec = _spec(target, opts, check_import=True)
    _setup_logging(opts["quiet"])
    report = run_local(
        spec,
        n,
        listeners=_progress(opts["quiet"]),
        timing=_timing(opts, 30.0),
        on_coordinator=lambda coord: _stop_on_signals(lambda abort: coord.stop(abort=abort)),
    )
    _finish(report, opts["json_path"], opts["quiet"])
    sys.exit(report.status)


@cli.command()
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

    \b
    Example (three shells):
      farm coordinator noop --rps 2000 --duration 10s --expect-agents 2
      farm agent --connect tcp://127.0.0.1:5555
      farm agent --connect tcp://127.0.0.1:5555
    """
    from pusher_farm.cluster.coordinator import Coordinator

    if expect < 1:
        _fail(f"--expect-agents must be at least 1, got {expect}")
    wait_s = _duration_or_none(wait, "--wait")
    if wait_s is None:
        _fail("--wait must be positive, e.g. --wait 60s")
    _check_bind(bind, insecure or keys_dir is not None)
    keys = None
    if keys_dir is not None:
        from pusher_farm.cluster.security import CoordinatorKeys

        keys = CoordinatorKeys.load(keys_dir)
    spec = _spec(target, opts, check_import=False)
    _setup_logging(opts["quiet"])
    try:
        coord = Coordinator(
            spec,
            bind=bind,
            expect=expect,
            timing=_timing(opts, wait_s),
            listeners=_progress(opts["quiet"]),
            keys=keys,
        )
    except zmq.ZMQError as exc:
        _fail(f"cannot bind {bind}: {exc}")
    with coord:
        click.echo(f"coordinator on {coord.endpoint}: waiting for {expect} agent(s)", err=True)
        _stop_on_signals(lambda abort: coord.stop(abort=abort))
        report = coord.run()
    _finish(report, opts["json_path"], opts["quiet"])
    sys.exit(report.status)


@cli.command()
@click.option("--connect", required=True, help="The coordinator, e.g. tcp://10.0.0.5:5555.")
@click.option("--name", help="This agent's name in reports (default: host-pid).")
@click.option(
    "--capacity", type=float, default=1.0, show_default=True, help="Relative weight of this agent's share of the rate."
)
@click.option("--once", is_flag=True, help="Serve one run, then exit (also when the coordinator goes away).")
@click.option(
    "--gossip",
    "gossips",
    multiple=True,
    metavar="MODULE:ATTR",
    help="A Gossiper on this host that hears every slot's events (repeatable).",
)
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), help="CURVE keys folder (farm keys generate).")
@click.option("--key", "key_name", default="agent-0", show_default=True, help="This agent's key in --keys.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def agent(
    connect: str,
    name: str | None,
    capacity: float,
    once: bool,
    gossips: tuple[str, ...],
    keys_dir: str | None,
    key_name: str,
    quiet: bool,
) -> None:
    """Serve farm runs from a coordinator, one after another, until stopped."""
    import math

    from pusher_farm.cluster.agent import Agent

    if not (math.isfinite(capacity) and capacity > 0):
        _fail(f"--capacity must be a positive number, got {capacity:g}")
    if not connect.startswith(("tcp://", "ipc://", "inproc://")):
        _fail(f"--connect {connect!r}: give an endpoint like tcp://HOST:5555")
    listeners = [_gossiper(g) for g in gossips]
    keys = None
    if keys_dir is not None:
        from pusher_farm.cluster.security import AgentKeys

        keys = AgentKeys.load(keys_dir, key_name)
    _setup_logging(quiet)
    server = Agent(connect, name=name, capacity=capacity, once=once, gossips=listeners, keys=keys)
    _stop_on_signals(lambda abort: server.stop())
    sys.exit(server.serve())


@cli.group()
def keys() -> None:
    """CURVE keys: only authorised agents join, agents obey only their coordinator."""


@keys.command("generate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--agents", type=int, default=1, show_default=True, help="How many agent keys to make.")
def keys_generate(directory: str, agents: int) -> None:
    """Make a coordinator key and agent keys in DIRECTORY (never overwrites).

    \b
    Copy to each agent host: DIRECTORY/coordinator.key and its own agent-I.key_secret.
    The coordinator uses DIRECTORY/coordinator.key_secret and DIRECTORY/authorized/.
    """
    from pusher_farm.cluster.security import generate

    if agents < 1:
        _fail(f"--agents must be at least 1, got {agents}")
    made = generate(directory, agents)
    click.echo(f"wrote {len(made)} files to {directory}: coordinator + {agents} agent key(s)")


def _gossiper(spec: str) -> Any:
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep:
        _fail(f"--gossip {spec!r}: give MODULE:ATTR")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        _fail(f"--gossip {spec!r}: {exc}")
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "listen")):
        obj = obj()
    if not (hasattr(obj, "listen") and hasattr(obj, "stop")):
        _fail(f"--gossip {spec!r} is not a Gossiper (needs listen(worker, gossips) and stop())")
    return obj


_LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def _check_bind(bind: str, insecure: bool) -> None:
    scheme, sep, rest = bind.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc"):
        _fail(f"--bind {bind!r}: give an endpoint like tcp://127.0.0.1:5555")
    if scheme == "tcp" and not rest.startswith(_LOOPBACK) and not insecure:
        _fail(
            f"--bind {bind} is reachable from other hosts and agents are not authenticated: "
            "give --keys DIR (farm keys generate DIR), bind 127.0.0.1, or pass --insecure"
        )


def _setup_logging(quiet: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def _finish(report: Report, json_path: str | None, quiet: bool) -> None:
    from pusher_farm.report import render_summary, write_json

    if json_path is not None:
        write_json(report, json_path)
    if not (quiet and json_path == "-"):
        click.echo(render_summary(report), err=json_path == "-")


@cli.command()
@click.option("--rps", type=float, default=200.0, show_default=True, help="Calls per second.")
@click.option("--duration", "-d", default="5s", show_default=True, help="How long.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("-q", "--quiet", is_flag=True, help="No live progress lines.")
def demo(rps: float, duration: str, json_path: str | None, quiet: bool) -> None:
    """Start a small HTTP server on 127.0.0.1 and load it: see the whole thing work."""
    from pusher_farm.demo import DemoServer
    from pusher_farm.report import progress_line
    from pusher_farm.targets import resolve

    until = _duration_or_none(duration, "--duration")
    if until is None:
        _fail("--duration must be positive, e.g. --duration 5s")
    profile = Constant(rps, until)
    _check_json_path(json_path)
    with DemoServer() as server:
        url = server.url + "?ms=2&fail=0.01"
        click.echo(f"demo server on {server.url} (2 ms +-50% per response, 1% answered 503)", err=True)
        click.echo(f"farm run http --url '{url}' --rps {profile.rate:g} --duration {until:g}s", err=True)
        fn = resolve("http", {"url": url})
        worker = hire("demo", fn, with_timeout(5.0))
        on_window = None if quiet else (lambda w: click.echo(progress_line(w), err=True))
        report = _loop.run(worker.work(profile.rate, until, on_window=on_window))
    _finish(report, json_path, quiet)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``farm`` script: one-line errors, exit status 2 for bad usage."""
    # Targets named package.module:function are looked up from the current directory first,
    # as with `python -m` (the installed script's own folder is what Python puts there).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        cli.main(args=argv, prog_name="farm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("farm: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "farm"
        click.echo(f"{command}: error: {exc.format_message()} (see {command} --help)", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"farm: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (_Usage, PusherError) as exc:
        click.echo(f"farm: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


__all__ = ["cli", "main"]
