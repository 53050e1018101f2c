"""What every ``farm`` command shares: one-line usage errors, durations, logging, signals, and
writing the report at the end."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from pusher_farm.core.results import Report
from pusher_farm.core.schedule import parse_duration
from pusher_farm.core.window import Window
from pusher_farm.errors import PusherError

__all__ = [
    "EXIT_USAGE",
    "Usage",
    "check_json_path",
    "check_report_paths",
    "duration",
    "fail",
    "finish",
    "progress",
    "setup_logging",
    "stop_on_signals",
]

EXIT_USAGE = 2


class Usage(Exception):
    """A usage error raised inside a command, reported as one line with exit status 2."""


def fail(message: str) -> NoReturn:
    raise Usage(message)


def duration(text: str, option: str) -> float:
    """A positive duration given to ``option`` ('30s', '1m30s', '500ms', a number of seconds)."""
    try:
        return parse_duration(text)
    except PusherError as exc:
        fail(f"{option}: {exc.reason}")


def check_json_path(path: str | None, option: str = "--json") -> None:
    if path is None or path == "-":
        return
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        fail(f"{option} {path}: folder {parent} does not exist")


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def stop_on_signals(stop: Callable[[bool], None], *, first: str, second: str) -> None:
    """First Ctrl-C/SIGTERM: ``stop(False)``, saying ``first``; again: ``stop(True)``."""
    hits = 0

    def handler(signum: int, frame: object) -> None:
        nonlocal hits
        hits += 1
        click.echo(first if hits == 1 else second, err=True)
        stop(hits > 1)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def progress(quiet: bool) -> list[Callable[[Window], None]]:
    from pusher_farm.report import progress_line

    return [] if quiet else [lambda w: click.echo(progress_line(w), err=True)]


def watch(quiet: bool) -> tuple[list[Callable[[Window], None]], Any]:
    """What shows a run as it goes: nothing (``-q``), the live view (rich) when standard error
    is a terminal, else a plain line per window. Returns the listeners and the view (or None:
    ``attach`` a coordinator to it, ``stop`` it before the summary)."""
    if quiet or not sys.stderr.isatty():
        return progress(quiet), None
    from pusher_farm.report.live import LiveView

    view = LiveView()
    return [view.on_window], view


def finish(
    report: Report,
    json_path: str | None,
    quiet: bool,
    *,
    csv_path: str | None = None,
    hdr_log: str | None = None,
    html_path: str | None = None,
) -> None:
    """Write the JSON report, the CSV series and the HDR interval log (those asked for) and
    print the summary."""
    from pusher_farm.report import render_summary, write_json
    from pusher_farm.report.files import write_csv, write_hdr_log

    report.manifest["command"] = ["farm", *sys.argv[1:]]
    if json_path is not None:
        write_json(report, json_path)
    if csv_path is not None:
        write_csv(report, csv_path)
    if hdr_log is not None:
        write_hdr_log(report, hdr_log)
    if html_path is not None:
        from pusher_farm.report.contract import to_dict
        from pusher_farm.report.html import render_html

        Path(html_path).write_text(render_html([to_dict(report)]), encoding="utf-8")
    if not (quiet and json_path == "-"):
        click.echo(render_summary(report), err=json_path == "-")


def check_report_paths(opts: dict[str, Any]) -> None:
    """Every report file the options name can be written (one line and exit 2 otherwise)."""
    for option, key in (("--json", "json_path"), ("--csv", "csv_path"), ("--hdr-log", "hdr_log"),
                        ("--html", "html_path")):  # fmt: skip
        check_json_path(opts[key], option)
