"""``farm report``: render a saved run as HTML, or compare two."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pusher_farm.cli.common import check_json_path, fail

__all__ = ["report"]


def _load(path: str) -> dict[str, Any]:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    except ValueError:
        fail(f"{path} is not JSON (give a report written by --json)")
    if not isinstance(d, dict) or not str(d.get("schema", "")).startswith("pusher-farm/report/"):
        fail(f"{path} is not a pusher-farm report (no schema pusher-farm/report/v1)")
    for key in ("counts", "series", "latency_ms"):
        if key not in d:
            fail(f"{path} is a report without {key!r}: written by another version?")
    return d


@click.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN.json [B.json]")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), required=True, help="Write the HTML here.")
def report(runs: tuple[str, ...], html_path: str) -> None:
    """Render a saved run (farm run --json RUN.json) as a self-contained HTML page; with two
    runs, compare them side by side: a table of deltas and overlaid plots."""
    from pusher_farm.report.html import render_html

    if len(runs) > 2:
        fail("give one report to render, or two to compare")
    check_json_path(html_path, "--html")
    loaded = [_load(p) for p in runs]
    names = [Path(p).stem for p in runs] if len(runs) == 2 else None
    try:
        page = render_html(loaded, names)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        fail(f"cannot render {' and '.join(runs)}: a field is missing or malformed ({type(exc).__name__}: {exc})")
    Path(html_path).write_text(page, encoding="utf-8")
    click.echo(f"wrote {html_path}", err=True)
