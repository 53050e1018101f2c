"""The sum of report windows (``Tally``): totals by scenario and by name, merged histograms and
a compact per-window series; ``aggregate`` makes a window that sums many (dense histograms)."""

from __future__ import annotations

from typing import Any

from pusher_farm.core.histogram_codec import decode, encode
from pusher_farm.core.stats import Histogram
from pusher_farm.core.window import MAX_NAMES, NameRow, Window, merge_names

__all__ = ["Tally", "aggregate", "series_row"]


class _Row:
    __slots__ = ("start", "started", "succeeded", "failed", "canceled", "latency")

    def __init__(self, start: float) -> None:
        self.start = start
        self.started = self.succeeded = self.failed = self.canceled = 0
        #: a Histogram while the window is open (dense: it sums every source's window of this
        #: index), its sparse form once closed
        self.latency: Histogram | dict[str, Any] = Histogram()
        self.latency.counts  # noqa: B018 - made dense

    def histogram(self) -> Histogram:
        if isinstance(self.latency, dict):
            self.latency = decode(self.latency)
        return self.latency


def aggregate(window: Window) -> Window:
    """``window`` with dense histograms: it will sum many windows (a farm's totals), so each one
    merges with a slice add, not as (bucket, count) pairs."""
    for histogram in (window.latency, window.service, window.lag):
        histogram.counts  # noqa: B018 - made dense
    return window


def _merge_bounded(into: Window, window: Window, most: int) -> None:
    """``window`` merged into ``into``, its names within ``most`` distinct ones."""
    names, window.names = window.names, {}
    try:
        into.merge(window)
    finally:
        window.names = names
    if names:
        merge_names(into.names, names, most)


def series_row(
    start: float, length: float, started: int, succeeded: int, failed: int, canceled: int, latency: Histogram
) -> dict[str, Any]:
    """One window as a row of the report's series: t, rps (slots fired per second), started,
    succeeded, failed, canceled, p50_ms, p99_ms."""
    p = latency.percentiles((50.0, 99.0))
    return {
        "t": round(start, 6),
        "rps": round((started + canceled) / length, 3),
        "started": started,
        "succeeded": succeeded,
        "failed": failed,
        "canceled": canceled,
        "p50_ms": p[50.0] / 1000,
        "p99_ms": p[99.0] / 1000,
    }


class Tally:
    """The sum of windows: totals, merged histograms and a compact per-window series.

    Memory stays bounded per window: a closed window keeps counters and its latency buckets in
    sparse form (a late window of the same index still merges exactly); the three total
    histograms are merged as windows arrive.
    """

    def __init__(self, length: float = 1.0, max_names: int = MAX_NAMES) -> None:
        self.length = length
        self.max_names = max_names
        # Each scenario's totals, their ``names`` holding named calls only; the calls no target
        # named go under the scenario's name: while a scenario has no named call at all, its row
        # is its totals (read when asked, no second copy merged per window); from its first
        # named window on they are kept apart.
        self._scenarios: dict[str, Window] = {}
        self._unnamed: dict[str, NameRow] = {}
        self._total: Window | None = None  # made when read, until the next window comes
        self._rows: dict[int, _Row] = {}
        self._dense: set[int] = set()  # rows whose latency histogram is still dense

    @property
    def total(self) -> Window:
        """Every scenario's windows merged, with the rows by name (bounded by max_names)."""
        if self._total is None:
            total = aggregate(Window(index=-1, start=0.0, length=self.length))
            for w in self.scenarios.values():
                _merge_bounded(total, w, self.max_names)
            self._total = total
        return self._total

    @property
    def scenarios(self) -> dict[str, Window]:
        """Each scenario's totals (by its name, in the order they first reported), its calls
        by name included."""
        out = {}
        for name, w in self._scenarios.items():
            calls = w.succeeded + w.failed
            if name not in self._unnamed:
                if calls:
                    w.names = {name or "default": NameRow.of(w)}
                out[name] = w
                continue
            full = Window(-1, 0.0, self.length, scenario=name)
            _merge_bounded(full, w, self.max_names)
            unnamed = self._unnamed[name]
            if unnamed.succeeded + unnamed.failed:
                merge_names(full.names, {name or "default": unnamed}, self.max_names)
            out[name] = full
        return out

    def add(self, window: Window) -> None:
        """Fold one window in (windows of the same index from several sources merge)."""
        self._total = None
        name = window.scenario
        mine = self._scenarios.get(name)
        if mine is None:
            mine = self._scenarios[name] = aggregate(Window(-1, 0.0, self.length, scenario=name))
        if name not in self._unnamed:
            mine.names = {}  # (a row read earlier: rebuilt when read again)
        if window.names and name not in self._unnamed:  # its first named calls: the rest go apart
            self._unnamed[name] = NameRow.of(mine) if mine.succeeded + mine.failed else NameRow()
        elif not window.names and name in self._unnamed and window.succeeded + window.failed:
            self._unnamed[name].add(window)
        _merge_bounded(mine, window, self.max_names)
        row = self._rows.get(window.index)
        if row is None:
            row = self._rows[window.index] = _Row(window.start)
        row.started += window.started
        row.succeeded += window.succeeded
        row.failed += window.failed
        row.canceled += window.canceled
        row.histogram().add(window.latency)
        self._dense.add(window.index)

    def close_before(self, index: int) -> None:
        """Compact every window with an index below ``index`` (frees its dense histogram)."""
        for i in [i for i in self._dense if i < index]:
            row = self._rows[i]
            if isinstance(row.latency, Histogram):
                row.latency = encode(row.latency)
            self._dense.discard(i)

    def latency_windows(self) -> list[tuple[int, float, Histogram]]:
        """(index, start in seconds, latency histogram) of every window, in time order."""
        out = []
        for index in sorted(self._rows):
            row = self._rows[index]
            lat = row.latency if isinstance(row.latency, Histogram) else decode(row.latency)
            out.append((index, row.start, lat))
        return out

    def series(self) -> list[dict[str, Any]]:
        """One row per window, in time order: t, rps, succeeded, failed, canceled, p50/p99."""
        rows = []
        for index in sorted(self._rows):
            row = self._rows[index]
            lat = row.latency if isinstance(row.latency, Histogram) else decode(row.latency)
            rows.append(series_row(row.start, self.length, row.started, row.succeeded, row.failed, row.canceled, lat))
        return rows
