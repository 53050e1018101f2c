"""The report's other files: the per-window series as CSV, and every window's latency
histogram in HdrHistogram's interval log format (what wrk2-style tools and HdrHistogram's own
``HistogramLogProcessor`` read)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from pusher_farm.core.histogram_codec import to_hdr
from pusher_farm.core.results import Report

__all__ = ["CSV_COLUMNS", "write_csv", "write_hdr_log"]

CSV_COLUMNS = ["t", "rps", "started", "succeeded", "failed", "canceled", "p50_ms", "p99_ms"]


def write_csv(report: Report, path: str) -> None:
    """One row per report window (the JSON's ``series``)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in report.series:
            writer.writerow(row)


def write_hdr_log(report: Report, path: str) -> None:
    """Each window's latency histogram (microseconds) as one interval of an HdrHistogram log
    (the package's format version; interval maxima in milliseconds). The intervals add up to the report's total
    latency histogram exactly."""
    from hdrh.log import HistogramLogWriter

    tally = report.tally
    windows = tally.latency_windows() if tally is not None else []
    length = tally.length if tally is not None else 1.0
    started = time.time() - report.elapsed_s  # the run's start, near enough, on the wall clock
    with Path(path).open("w", encoding="utf-8") as f:
        writer = HistogramLogWriter(f)
        writer.output_comment(f"pusher-farm latency per {length:g} s window, in microseconds: {report.target}")
        writer.output_log_format_version()
        # (the package's own output_start_time mixes up seconds and milliseconds)
        stamp = time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(started))
        f.write(f"#[StartTime: {started:.3f} (seconds since epoch), {stamp}]\n")
        writer.output_legend()
        for _, start, histogram in windows:
            if histogram.total:
                writer.output_interval_histogram(to_hdr(histogram), start, start + length, max_value_unit_ratio=1000.0)
