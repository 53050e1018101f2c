"""The ``farm`` command: thin click wrappers over the library.

Usage errors print one line (``farm: error: ...``) and exit with status 2, before any load.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from pusher_farm.core.config import (
    DEFAULT_OVERTIME,
    with_overtime,
    with_profile,
    with_spin,
    with_timeout,
    with_window,
)
from pusher_farm.core.report import Report
from pusher_farm.core.schedule import Constant, Profile, parse_duration, parse_stages
from pusher_farm.core.worker import hire
from pusher_farm.errors import InvalidOption, PusherError

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
        click.option("--param", "params", multiple=True, metavar="K=V", help="A target parameter (repeatable)."),
        click.option("--url", help="URL for the http target."),
        click.option("--method", help="HTTP method for the http target (default GET)."),
        click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="HTTP header (repeatable)."),
        click.option("--body", help="HTTP request body."),
        click.option(
            "--json", "json_path", type=click.Path(dir_okay=False), help="Write the JSON report here ('-': stdout)."
        ),
        click.option("-q", "--quiet", is_flag=True, help="No live progress lines."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _target_params(
    params: tuple[str, ...], url: str | None, method: str | None, headers: tuple[str, ...], body: str | None
) -> dict[str, Any]:
    out = _params(params)
    for key, value in (("url", url), ("method", method), ("body", body)):
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


@cli.command()
@run_options
def run(target: str, **opts: Any) -> None:
    """Run TARGET (noop, sleep, http or package.module:function) on this host.

    \b
    Examples:
      farm run noop --rps 1000 --duration 10s
      farm run http --url http://127.0.0.1:8080/ --rps 200 --duration 30s --json report.json
      farm run sleep --param ms=20 --stages '10s:0-500,20s:500,5s:500-0'
    """
    from pusher_farm.targets import resolve

    rps, stages, json_path, quiet = opts["rps"], opts["stages"], opts["json_path"], opts["quiet"]
    profile, until = _profile(rps, opts["duration"], stages)
    timeout_s = _duration_or_none(opts["timeout"], "--timeout")
    window_s = _duration_or_none(opts["window"], "--window")
    if window_s is None:
        _fail("--window must be positive, e.g. --window 1s")
    _check_json_path(json_path)
    spin_s = _duration_or_none(opts["spin"], "--spin") or 0.0
    offers = [with_overtime(opts["overtime"]), with_timeout(timeout_s), with_window(window_s), with_spin(spin_s)]
    if stages is not None:
        offers.append(with_profile(profile))
    fn = resolve(target, _target_params(opts["params"], opts["url"], opts["method"], opts["headers"], opts["body"]))
    worker = hire("local", fn, *offers)
    rate = None if stages is not None else rps

    async def main() -> Report:
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                click.echo("stopping: waiting for calls in flight (Ctrl-C again to abort)", err=True)
                worker.stop()
            else:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        on_window = None if quiet else (lambda w: click.echo(progress_line(w), err=True))
        task = asyncio.current_task()
        assert task is not None
        return await worker.work(rate, until, on_window=on_window)

    from pusher_farm.core import loop as _loop
    from pusher_farm.report import progress_line

    try:
        report = _loop.run(main())
    except asyncio.CancelledError:
        click.echo("farm: aborted", err=True)
        sys.exit(130)
    _finish(report, json_path, quiet)


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
    from pusher_farm.core import loop as _loop
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


__all__ = ["cli", "main", "InvalidOption"]
