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

from pusher_farm.core.histogram_codec import decode, encode
from pusher_farm.core.stats import Histogram

__all__ = [
    "MAX_COUNTERS",
    "MAX_ERROR_KINDS",
    "MAX_NAMES",
    "MAX_PHASES",
    "OTHER_NAMES",
    "NameRow",
    "Window",
    "merge_names",
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

    @classmethod
    def of(cls, window: Window) -> NameRow:
        """What ``window`` counted, as one name's row (a copy)."""
        row = cls()
        row.add(window)
        return row

    def add(self, window: Window) -> None:
        """Count ``window``'s calls in this row (all of them under this one name)."""
        self.succeeded += window.succeeded
        self.failed += window.failed
        self.errors.update(window.errors)
        self.latency.add(window.latency)
        self.service.add(window.service)

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
            "lat": encode(self.latency),
            "svc": encode(self.service),
        }

    @classmethod
    def from_wire(cls, data: Any) -> NameRow:
        if not isinstance(data, dict):
            raise ValueError("a name's row must be a map")
        ok, ko = data.get("ok"), data.get("ko")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MOST for v in (ok, ko)):
            raise ValueError("a name's counts must be whole numbers >= 0")
        row = cls(ok, ko, _counts(data.get("err"), MAX_ERROR_KINDS, 256, "errors"))
        row.latency = decode(data.get("lat"))
        row.service = decode(data.get("svc"))
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
            "lat": encode(self.latency),
            "svc": encode(self.service),
            "lag": encode(self.lag),
            **({"ph": {k: encode(h) for k, h in self.phases.items()}} if self.phases else {}),
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
            latency=decode(data.get("lat")),
            service=decode(data.get("svc")),
            lag=decode(data.get("lag")),
        )
        phases = data.get("ph", {})
        if not isinstance(phases, dict) or len(phases) > MAX_PHASES or not all(_short(k, 64) for k in phases):
            raise ValueError(f"window phases must map at most {MAX_PHASES} short names to histograms")
        window.phases = {name: decode(h) for name, h in phases.items()}
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
