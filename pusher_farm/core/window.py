"""Report windows: what one process measured in one slice of time, and their sum.

A ``Window`` holds counters and three ``Histogram``s (latency from the intended start, service
time from the actual start, schedule lag) for the outcomes that *ended* in
[start, start + length) on the run's clock; ``started`` counts the calls launched in it.
Windows are plain data: they travel as msgpack maps (``to_wire``/``from_wire``) and merge
exactly (``merge``), so one process's report and a farm's are built the same way (``Tally``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.core.stats import Histogram

__all__ = ["MAX_COUNTERS", "MAX_ERROR_KINDS", "MAX_PHASES", "Tally", "Window", "series_row"]

#: error kinds one window may carry (a run has few; a peer sending more is refused)
MAX_ERROR_KINDS = 1024
#: phases (the http target's wait, connect, tls, ttfb, receive) and target counters a window
#: may carry
MAX_PHASES = 16
MAX_COUNTERS = 64
_MOST = 1 << 53


@dataclass
class Window:
    index: int
    start: float
    length: float
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)
    service: Histogram = field(default_factory=Histogram)
    lag: Histogram = field(default_factory=Histogram)
    #: the phases a target measured, by name (microseconds), and what it counted
    phases: dict[str, Histogram] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.canceled

    def merge(self, other: Window) -> None:
        self.started += other.started
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.canceled += other.canceled
        self.errors.update(other.errors)
        self.latency.add(other.latency)
        self.service.add(other.service)
        self.lag.add(other.lag)
        for name, histogram in other.phases.items():
            mine = self.phases.get(name)
            if mine is None:
                mine = self.phases[name] = Histogram()
            mine.add(histogram)
        self.counters.update(other.counters)

    def to_wire(self) -> dict[str, Any]:
        return {
            "i": self.index,
            "t": self.start,
            "w": self.length,
            "st": self.started,
            "ok": self.succeeded,
            "ko": self.failed,
            "cx": self.canceled,
            "err": dict(self.errors),
            "lat": self.latency.to_sparse(),
            "svc": self.service.to_sparse(),
            "lag": self.lag.to_sparse(),
            **({"ph": {k: h.to_sparse() for k, h in self.phases.items()}} if self.phases else {}),
            **({"ct": dict(self.counters)} if self.counters else {}),
        }

    @classmethod
    def from_wire(cls, data: Any) -> Window:
        """The window ``to_wire`` made; ``ValueError`` for anything malformed or inconsistent
        (it comes from a peer: every field is checked)."""
        if not isinstance(data, dict):
            raise ValueError("a window must be a map")
        counts = [data.get(k) for k in ("i", "st", "ok", "ko", "cx")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MOST for v in counts):
            raise ValueError("window index and counters must be whole numbers >= 0")
        start, length = data.get("t"), data.get("w")
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (start, length)
        ):
            raise ValueError("window start and length must be finite numbers")
        errors = _counts(data.get("err"), MAX_ERROR_KINDS, 256, "errors")
        window = cls(
            index=counts[0],
            start=float(start),
            length=float(length),
            started=counts[1],
            succeeded=counts[2],
            failed=counts[3],
            canceled=counts[4],
            errors=errors,
            latency=Histogram.from_sparse(data.get("lat")),
            service=Histogram.from_sparse(data.get("svc")),
            lag=Histogram.from_sparse(data.get("lag")),
        )
        phases = data.get("ph", {})
        if not isinstance(phases, dict) or len(phases) > MAX_PHASES or not all(_short(k, 64) for k in phases):
            raise ValueError(f"window phases must map at most {MAX_PHASES} short names to histograms")
        window.phases = {name: Histogram.from_sparse(h) for name, h in phases.items()}
        window.counters = _counts(data.get("ct", {}), MAX_COUNTERS, 64, "counters")
        if sum(window.errors.values()) != window.failed:
            raise ValueError("window errors do not add up to its failed count")
        ended = window.succeeded + window.failed
        if not window.latency.total == window.service.total == window.lag.total == ended:
            raise ValueError("window histograms do not hold one value per ended call")
        return window


def _short(key: Any, most: int) -> bool:
    return isinstance(key, str) and len(key) <= most


def _counts(value: Any, most: int, longest: int, what: str) -> Counter[str]:
    """A peer's map of names (at most ``most``, each up to ``longest`` characters) to counts."""
    if (
        not isinstance(value, dict)
        or len(value) > most
        or not all(
            _short(k, longest) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MOST
            for k, v in value.items()
        )
    ):
        raise ValueError(f"window {what} must map at most {most} short names to counts")
    return Counter(value)


class _Row:
    __slots__ = ("start", "started", "succeeded", "failed", "canceled", "latency")

    def __init__(self, start: float) -> None:
        self.start = start
        self.started = self.succeeded = self.failed = self.canceled = 0
        #: a Histogram while the window is open, its sparse form once closed
        self.latency: Histogram | dict[str, Any] = Histogram()

    def histogram(self) -> Histogram:
        if isinstance(self.latency, dict):
            self.latency = Histogram.from_sparse(self.latency)
        return self.latency


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

    def __init__(self, length: float = 1.0) -> None:
        self.length = length
        self.total = Window(index=-1, start=0.0, length=length)
        self._rows: dict[int, _Row] = {}
        self._dense: set[int] = set()  # rows whose latency histogram is still dense

    def add(self, window: Window) -> None:
        """Fold one window in (windows of the same index from several sources merge)."""
        self.total.merge(window)
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
                row.latency = row.latency.to_sparse()
            self._dense.discard(i)

    def latency_windows(self) -> list[tuple[int, float, Histogram]]:
        """(index, start in seconds, latency histogram) of every window, in time order."""
        out = []
        for index in sorted(self._rows):
            row = self._rows[index]
            lat = row.latency if isinstance(row.latency, Histogram) else Histogram.from_sparse(row.latency)
            out.append((index, row.start, lat))
        return out

    def series(self) -> list[dict[str, Any]]:
        """One row per window, in time order: t, rps, succeeded, failed, canceled, p50/p99."""
        rows = []
        for index in sorted(self._rows):
            row = self._rows[index]
            lat = row.latency if isinstance(row.latency, Histogram) else Histogram.from_sparse(row.latency)
            rows.append(series_row(row.start, self.length, row.started, row.succeeded, row.failed, row.canceled, lat))
        return rows
