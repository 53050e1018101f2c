"""Rendering reports: the console summary, live progress lines and the JSON file."""

from pusher_farm.report.console import progress_line, render_summary
from pusher_farm.report.jsonfile import write_json

__all__ = ["progress_line", "render_summary", "write_json"]
