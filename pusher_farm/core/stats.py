"""Exact, mergeable timing histograms.

The bucket layout is HdrHistogram's (the ``hdrhistogram`` package, 1 µs to 1 h, 3 significant
digits), so every value lands in exactly the bucket ``HdrHistogram.record_value`` would pick and
percentiles read the same. Counts live in a numpy array instead of the package's ctypes array:
``record_value`` there costs about 1 µs per value in pure Python, and every call records three
timings, so values are recorded here in batches (a vectorised bucket index and one ``bincount``),
about 30 ns per value. ``to_hdr``/``from_hdr`` move a histogram to and from the package (and its
standard V2 encoding) for anyone who wants to merge with other HDR tools.

Merging is adding counts: exact, associative, never an average of percentiles. Exact sum, min
and max of the raw values travel alongside, so the mean and the max are exact too.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from pusher_farm.core.buckets import HIGHEST_US, LAYOUT, LOWEST_US, PERCENTILES, SIGNIFICANT_FIGURES

__all__ = ["Histogram", "LOWEST_US", "HIGHEST_US", "SIGNIFICANT_FIGURES", "PERCENTILES"]

_LAYOUT = LAYOUT
#: a histogram kept as (bucket, count) pairs becomes dense past this many non-empty buckets
_DENSE_PAIRS = 4096
#: pairs merged into a histogram wait, this many at most, to be combined in one go
_PARTS = 64


class Histogram:
    """Counts of integer microsecond values in HdrHistogram's buckets, plus exact sum/min/max.

    Values above one hour are recorded as one hour and counted in ``clamped``.
    """

    __slots__ = ("_dense", "_pairs", "_parts", "_run", "total", "sum", "min", "max", "clamped")

    layout = _LAYOUT

    def __init__(self) -> None:
        # Two forms: the non-empty buckets as (indices ascending, counts), kept while there
        # are at most _DENSE_PAIRS of them (a histogram decoded from the wire, or one call
        # name's among a thousand: a few KB), else every bucket's count (188 KB). Merging
        # pairs into a dense histogram is one indexed add.
        self._dense: np.ndarray | None = None
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None
        #: pairs added but not yet combined (merging is appending; reading combines them)
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        #: as decoded from the wire: (first bucket, counts to the last non-empty one), added to
        #: a dense histogram with one slice add (a farm's coordinator merges a thousand a second)
        self._run: tuple[int, np.ndarray] | None = None
        self.total = 0
        self.sum = 0
        self.min = 0
        self.max = 0
        self.clamped = 0

    @property
    def counts(self) -> np.ndarray:
        """All bucket counts (int64, HdrHistogram's index order)."""
        if self._dense is None:
            self._combine()  # (which may make it dense)
        if self._dense is None:
            self._dense = np.zeros(_LAYOUT.counts_len, dtype=np.int64)
            if self._pairs is not None:
                index, counts = self._pairs
                self._dense[index] = counts
        self._pairs = None
        return self._dense

    @counts.setter
    def counts(self, value: np.ndarray) -> None:
        self._dense = value
        self._pairs = None

    def nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        """(bucket indices, counts) of the non-empty buckets, indices ascending."""
        if self._dense is None:
            self._combine()
            if self._pairs is None:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
            return self._pairs
        nz = np.flatnonzero(self._dense)
        return nz, self._dense[nz]

    def cumulative(self, bounds_us: Sequence[int]) -> list[int]:
        """How many values are at most each bound (microseconds, ascending): Prometheus-style
        buckets. A value counts by its bucket's lowest equivalent (3 significant digits)."""
        nz, counts = self.nonzero()
        if not nz.size:
            return [0] * len(bounds_us)
        lows = _LAYOUT._value_from_index(nz.astype(np.int64))
        running = np.cumsum(counts)
        at = np.searchsorted(lows, np.asarray(bounds_us, dtype=np.int64), side="right")
        return [int(running[i - 1]) if i else 0 for i in at.tolist()]

    # -- recording -------------------------------------------------------------------------

    def record_many(self, values_us: np.ndarray | Sequence[int]) -> None:
        """Record a batch of microsecond values (negative values count as 0)."""
        values = np.asarray(values_us, dtype=np.int64)
        if values.size == 0:
            return
        values = np.maximum(values, 0)
        over = values > _LAYOUT.highest
        if over.any():
            self.clamped += int(over.sum())
            values = np.minimum(values, _LAYOUT.highest)
        index = _LAYOUT.index_of(values)
        if self._dense is not None:
            first = int(index.min())
            run = np.bincount(index - first)
            self._dense[first : first + run.size] += run
        else:
            index = np.sort(index)
            starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
            counts = np.diff(np.append(starts, index.size))
            self._add_pairs(index[starts], counts)
        low, high = int(values.min()), int(values.max())
        self.min = low if self.total == 0 else min(self.min, low)
        self.max = max(self.max, high)
        self.total += int(values.size)
        self.sum += int(values.sum())

    def record(self, value_us: int) -> None:
        self.record_many([value_us])

    def add(self, other: Histogram) -> None:
        """Merge ``other`` into this histogram (exact)."""
        if other.total == 0:
            return
        if self._dense is not None and other._run is not None:  # (a run from the wire is alone)
            offset, run = other._run
            self._dense[offset : offset + run.size] += run  # a slice add: no index array
        else:
            if other._dense is None:
                other._combine()  # (its own pairs waiting to be combined count too)
            if other._dense is None and other._pairs is not None:
                index, counts = other._pairs
                if self._dense is not None:
                    self._dense[index] += counts  # unique indices: one indexed add
                else:
                    self._add_pairs(index, counts)
            else:
                self.counts += other.counts
        self.min = other.min if self.total == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.total += other.total
        self.sum += other.sum
        self.clamped += other.clamped

    def _add_pairs(self, index: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts`` at the ascending unique bucket ``index``es to this histogram while it
        holds pairs (or nothing): kept aside and combined when read, or once enough wait
        (pairs are never changed in place, so they may be shared)."""
        if self._run is not None:
            self._combine()
        pair = (index.astype(np.int64, copy=False), counts.astype(np.int64, copy=False))
        if self._pairs is None and not self._parts:
            self._pairs = pair
            return
        if self._pairs is not None and self._pairs[0].size + index.size > _DENSE_PAIRS:
            self.counts[pair[0]] += pair[1]  # a big one (a farm's totals): dense from now on
            return
        self._parts.append(pair)
        if len(self._parts) >= _PARTS:
            self._combine()

    def _combine(self) -> None:
        """Fold the pairs kept aside (and a run from the wire) into one set (dense past
        _DENSE_PAIRS buckets)."""
        if self._run is not None:
            offset, run = self._run
            self._run = None
            nz = np.flatnonzero(run)
            pairs = (nz + offset, run[nz].astype(np.int64))
            if self._pairs is None and not self._parts:
                self._pairs = pairs
            else:
                self._parts.append(pairs)
        if not self._parts:
            return
        parts = ([self._pairs] if self._pairs is not None else []) + self._parts
        self._parts = []
        index = np.concatenate([p[0] for p in parts])
        counts = np.concatenate([p[1] for p in parts])
        if index.size > _DENSE_PAIRS:  # exact: float64 holds counts up to 2**53
            self._pairs = None
            self._dense = np.bincount(index, weights=counts, minlength=_LAYOUT.counts_len).astype(np.int64)
            return
        order = np.argsort(index, kind="stable")
        index = index[order]
        starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
        self._pairs = (index[starts], np.add.reduceat(counts[order], starts))

    @classmethod
    def from_pairs(
        cls, index: np.ndarray, counts: np.ndarray, *, total: int, sum_: int, low: int, high: int, clamped: int = 0
    ) -> Histogram:
        """A histogram of ``counts`` at the ascending unique buckets ``index`` with the given
        exact extras (the recorder's split of calls by name makes them)."""
        h = cls()
        h._pairs = (index, counts)
        h.total, h.sum, h.min, h.max, h.clamped = total, sum_, low, high, clamped
        return h

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        out = cls()
        for h in histograms:
            out.add(h)
        return out

    # -- reading ---------------------------------------------------------------------------

    def percentile(self, p: float) -> int:
        """The value at percentile ``p`` (0..100), exactly as HdrHistogram reports it."""
        return self.percentiles([p])[p]

    def percentiles(self, ps: Iterable[float]) -> dict[float, int]:
        ps = list(ps)
        if self.total == 0:
            return {p: 0 for p in ps}
        if self._dense is None:
            self._combine()
        if self._dense is None and self._pairs is not None:  # read the pairs: no dense array
            index, counts = self._pairs
            cumulative = np.cumsum(counts)
        else:
            index, cumulative = None, np.cumsum(self.counts)
        out: dict[float, int] = {}
        for p in ps:
            target = max(int(min(p, 100.0) * self.total / 100 + 0.5), 1)
            i = int(np.searchsorted(cumulative, target, side="left"))
            if index is not None:
                i = int(index[min(i, index.size - 1)])
            out[p] = int(_LAYOUT.highest_values[i] if p else _LAYOUT.lowest_values[i])
        return out

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0

    def summary_ms(self) -> dict[str, float]:
        """p50, p90, p99, p99.9, max and mean in milliseconds (the report's shape)."""
        values = self.percentiles(PERCENTILES)
        # A bucket's highest equivalent value can exceed the exact maximum: never show that.
        out = {_pname(p): min(values[p], self.max) / 1000 for p in PERCENTILES}
        out["max"] = self.max / 1000
        out["mean"] = round(self.mean / 1000, 6)
        return out

    # -- compact form for the wire ---------------------------------------------------------

    def to_sparse(self) -> dict[str, Any]:
        """The counts from the first to the last non-empty bucket (a latency histogram's
        buckets are mostly one dense run), in the narrowest unsigned type that holds them,
        byte-shuffled when wider than a byte (high bytes compress apart from low ones), zlib
        level 1; plus the exact extras. Decoding is one decompress and one slice add: at 1,000
        agent-seconds per second this was a quarter of the coordinator's CPU of index+count
        pairs (see docs/architecture.md)."""
        if self._dense is None:
            self._combine()
        if self._dense is None and self._pairs is not None:
            index, pairs = self._pairs  # the run from the first to the last non-empty bucket
            base = int(index[0])
            counts = np.zeros(int(index[-1]) - base + 1, dtype=np.int64)
            counts[index - base] = pairs
        else:
            base, counts = 0, self.counts
        nz = np.flatnonzero(counts)
        if nz.size:
            run = counts[nz[0] : nz[-1] + 1]
            offset, top = base + int(nz[0]), int(run.max())
        else:
            offset, run, top = 0, np.zeros(0, dtype=np.int64), 0
        width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
        packed = run.astype(f"<u{width}")
        if width > 1:
            packed = packed.view(np.uint8).reshape(-1, width).T  # byte j of every count together
        return {
            "z": zlib.compress(packed.tobytes(), 1),
            "o": offset,
            "k": int(run.size),
            "b": width,
            "n": self.total,
            "s": self.sum,
            "lo": self.min,
            "hi": self.max,
            "x": self.clamped,
        }

    @classmethod
    def from_sparse(cls, data: Any) -> Histogram:
        """The histogram ``to_sparse`` encoded; ``ValueError`` for anything malformed or
        inconsistent (it may come from a peer: every field is checked)."""
        if not isinstance(data, dict):
            raise ValueError("a histogram must be a map")
        offset, k, width = _whole(data, "o"), _whole(data, "k"), _whole(data, "b")
        if width not in (1, 2, 4, 8) or offset + k > _LAYOUT.counts_len:
            raise ValueError("histogram encoding out of range")
        payload = data.get("z")
        if not isinstance(payload, bytes):
            raise ValueError("histogram payload must be bytes")
        d = zlib.decompressobj()
        try:
            raw = d.decompress(payload, width * k + 1)
        except zlib.error:
            raise ValueError("histogram payload is not zlib data") from None
        if len(raw) != width * k or d.unconsumed_tail:
            raise ValueError("histogram payload has the wrong size")
        # Counts stay in their unsigned wire type: adding them to int64 counts upcasts anyway.
        if width == 1:
            run = np.frombuffer(raw, dtype=np.uint8)
        else:
            shuffled = np.frombuffer(raw, dtype=np.uint8).reshape(width, k)
            run = np.ascontiguousarray(shuffled.T).view(f"<u{width}").reshape(k)
            if width == 8:  # int64 += uint64 is not a safe cast; and counts must not wrap
                if k and int(run.max()) >= 1 << 62:
                    raise ValueError("histogram counts out of range")
                run = run.astype(np.int64)
        h = cls()
        h.total, h.sum = _whole(data, "n"), _whole(data, "s")
        h.min, h.max, h.clamped = _whole(data, "lo"), _whole(data, "hi"), _whole(data, "x", 0)
        if h.total != int(run.sum()):
            raise ValueError("histogram total does not match its counts")
        if h.total and not (h.min <= h.max <= _LAYOUT.highest and h.min * h.total <= h.sum <= h.max * h.total):
            raise ValueError("histogram min, max and sum do not fit its counts")
        if h.clamped > h.total:
            raise ValueError("histogram clamped count over its total")
        if k:
            h._run = (offset, run)
        return h

    # -- the hdrhistogram package ----------------------------------------------------------

    def to_hdr(self) -> HdrHistogram:
        """An ``hdrh.histogram.HdrHistogram`` with the same counts (for ``encode()`` etc.)."""
        hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        nz, values = self.nonzero()
        for i, c in zip(nz.tolist(), values.tolist(), strict=True):
            hdr.counts[i] = c
        if nz.size:
            hdr.set_internal_tacking_values(int(nz[0]), int(nz[-1]), self.total)
        return hdr

    @classmethod
    def from_hdr(cls, hdr: HdrHistogram) -> Histogram:
        """Counts from an HdrHistogram with the same layout; sum and extremes from buckets."""
        if hdr.counts_len != _LAYOUT.counts_len or hdr.unit_magnitude != _LAYOUT.unit_magnitude:
            raise ValueError("HdrHistogram layout differs (need 1 us .. 1 h, 3 figures)")
        h = cls()
        h.counts[:] = np.ctypeslib.as_array(hdr.counts)[: _LAYOUT.counts_len]
        h.total = int(h.counts.sum())
        nz = np.flatnonzero(h.counts)
        if nz.size:
            h.min = int(_LAYOUT.lowest_values[nz[0]])
            h.max = int(_LAYOUT.highest_values[nz[-1]])
            mids = (_LAYOUT.lowest_values[nz] + _LAYOUT.highest_values[nz]) // 2
            h.sum = int((mids * h.counts[nz]).sum())
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (
            self.total == other.total
            and self.sum == other.sum
            and self.min == other.min
            and self.max == other.max
            and bool(np.array_equal(self.counts, other.counts))
        )

    def __repr__(self) -> str:
        return f"Histogram(total={self.total}, p50={self.percentile(50)}us, max={self.max}us)"


def _whole(data: dict[str, Any], key: str, default: int | None = None) -> int:
    """``data[key]`` as a whole number from 0 to 2**62 (``ValueError`` otherwise)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
        raise ValueError(f"histogram field {key!r} must be a whole number >= 0, got {value!r}")
    return value


def _pname(p: float) -> str:
    return "p" + (f"{p:g}")
