"""Writing a report's JSON contract to a file (or ``-`` for standard output)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from pusher_farm.core.results import Report
from pusher_farm.report.contract import to_dict


def write_json(report: Report, path: str | os.PathLike[str]) -> None:
    """Write ``to_dict(report)``; the file appears whole or not at all (atomic rename)."""
    text = json.dumps(to_dict(report), indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
