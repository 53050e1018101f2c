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

__all__ = [
    "MAX_COUNTERS",
    "MAX_ERROR_KINDS",
    "MAX_NAMES",
    "MAX_PHASES",
    "OTHER_NAMES",
    "NameRow",
    "Tally",
    "Window",
    "aggregate",
    "merge_names",
    "series_row",
]

#: error kinds one window may carry (a run has few; a peer sending more is refused)
MAX_ERROR_KINDS = 1024
#: phases (the http target's wait, connect, tls, ttfb, receive) and target counters a window
#: may carry
MAX_PHASES = 16
MAX_COUNTERS = 64
#: distinct call names one window may carry, and the longest name
MAX_NAMES = 10_000
MAX_NAME = 256
#: the name calls are counted under once a run has seen its most distinct names
OTHER_NAMES = "other"
_MOST = 1 << 53


@dataclass
class NameRow:
    """The calls of one name (``ctx.name``, the http target's ``GET /users/{id}``): outcomes,
    errors by kind, latency and service time. Canceled slots never called the target: they
    are counted by scenario, not by name."""

    succeeded: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)
    service: Histogram = field(default_factory=Histogram)

    def merge(self, other: NameRow) -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.errors.update(other.errors)
        self.latency.add(other.latency)
        self.service.add(other.service)

    def to_wire(self) -> dict[str, Any]:
        return {
            "ok": self.succeeded,
            "ko": self.failed,
            "err": dict(self.errors),
            "lat": self.latency.to_sparse(),
            "svc": self.service.to_sparse(),
        }

    @classmethod
    def from_wire(cls, data: Any) -> NameRow:
        if not isinstance(data, dict):
            raise ValueError("a name's row must be a map")
        ok, ko = data.get("ok"), data.get("ko")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MOST for v in (ok, ko)):
            raise ValueError("a name's counts must be whole numbers >= 0")
        row = cls(ok, ko, _counts(data.get("err"), MAX_ERROR_KINDS, 256, "errors"))
        row.latency = Histogram.from_sparse(data.get("lat"))
        row.service = Histogram.from_sparse(data.get("svc"))
        if sum(row.errors.values()) != ko or not row.latency.total == row.service.total == ok + ko:
            raise ValueError("a name's errors and histograms do not add up to its counts")
        return row


def merge_names(into: dict[str, NameRow], names: dict[str, NameRow], most: int) -> None:
    """Fold ``names`` into ``into``, keeping at most ``most`` distinct names: the rest go under
    ``OTHER_NAMES`` (merging several agents' names stays bounded too)."""
    for name, row in names.items():
        mine = into.get(name)
        if mine is None:
            if len(into) >= most and name != OTHER_NAMES:
                name = OTHER_NAMES
                mine = into.get(name)
            if mine is None:
                mine = into[name] = NameRow()
        mine.merge(row)


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
    #: the scenario whose calls the window counts ("": a run of one scenario, or a merge of
    #: several), and those calls by name when a target named any (empty: all under the
    #: scenario's name)
    scenario: str = ""
    names: dict[str, NameRow] = field(default_factory=dict)
    #: named calls a recorder keeps until the window closes (never on the wire)
    unsettled: list[Any] = field(default_factory=list, repr=False, compare=False)

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
        if other.names:
            merge_names(self.names, other.names, MAX_NAMES)

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
            **({"sc": self.scenario} if self.scenario else {}),
            **({"nm": {k: r.to_wire() for k, r in self.names.items()}} if self.names else {}),
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
        scenario = data.get("sc", "")
        if not _short(scenario, MAX_NAME):
            raise ValueError(f"a window's scenario must be a name of at most {MAX_NAME} characters")
        window.scenario = scenario
        names = data.get("nm", {})
        if not isinstance(names, dict) or len(names) > MAX_NAMES or not all(_short(k, MAX_NAME) for k in names):
            raise ValueError(f"window names must map at most {MAX_NAMES:,} names to their rows")
        window.names = {name: NameRow.from_wire(row) for name, row in names.items()}
        if names and (
            sum(r.succeeded for r in window.names.values()) != window.succeeded
            or sum(r.failed for r in window.names.values()) != window.failed
        ):
            raise ValueError("window names do not add up to its counts")
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
        #: a Histogram while the window is open (dense: it sums every source's window of this
        #: index), its sparse form once closed
        self.latency: Histogram | dict[str, Any] = Histogram()
        self.latency.counts  # noqa: B018 - made dense

    def histogram(self) -> Histogram:
        if isinstance(self.latency, dict):
            self.latency = Histogram.from_sparse(self.latency)
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


def _as_name(window: Window) -> NameRow:
    row = NameRow(window.succeeded, window.failed, Counter(window.errors))
    row.latency.add(window.latency)
    row.service.add(window.service)
    return row


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
                    w.names = {name or "default": _as_name(w)}
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
            self._unnamed[name] = _as_name(mine) if mine.succeeded + mine.failed else NameRow()
        elif not window.names and name in self._unnamed and window.succeeded + window.failed:
            row = self._unnamed[name]
            row.succeeded += window.succeeded
            row.failed += window.failed
            row.errors.update(window.errors)
            row.latency.add(window.latency)
            row.service.add(window.service)
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
