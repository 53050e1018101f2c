"""Formats of a report: the JSON contract, the console summary and live lines, the advice.

``to_dict(report)`` is the JSON contract (``write_json`` writes it to a file);
``warnings(report)`` what a reader must not miss; ``render_summary`` the table printed at the
end of a run.
"""

from pusher_farm.report.advice import warnings
from pusher_farm.report.console import progress_line, render_summary
from pusher_farm.report.contract import SCHEMA, to_dict
from pusher_farm.report.jsonfile import write_json

__all__ = ["SCHEMA", "progress_line", "render_summary", "to_dict", "warnings", "write_json"]
