"""Exact, mergeable timing histograms.

The bucket layout is HdrHistogram's (the ``hdrhistogram`` package, 1 µs to 1 h, 3 significant
digits), so every value lands in exactly the bucket ``HdrHistogram.record_value`` would pick and
percentiles read the same. Counts live in a numpy array instead of the package's ctypes array:
``record_value`` there costs about 1 µs per value in pure Python, and every call records three
timings, so values are recorded here in batches (a vectorised bucket index and one ``bincount``),
about 30 ns per value. ``histogram_codec`` moves a histogram to and from the wire and the
package (and its standard V2 encoding, for anyone who wants to merge with other HDR tools).

Merging is adding counts: exact, associative, never an average of percentiles. Exact sum, min
and max of the raw values travel alongside, so the mean and the max are exact too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pusher_farm.core.buckets import LAYOUT, PERCENTILES

__all__ = ["Histogram"]

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

    # -- runs (the wire's form: see ``histogram_codec``) --------------------------------------

    def run(self) -> tuple[int, np.ndarray]:
        """(first non-empty bucket, the counts from it to the last non-empty one): a latency
        histogram's buckets are mostly one dense run."""
        if self._dense is None:
            self._combine()
        if self._dense is None and self._pairs is not None:
            index, pairs = self._pairs
            base = int(index[0])
            counts = np.zeros(int(index[-1]) - base + 1, dtype=np.int64)
            counts[index - base] = pairs
        else:
            base, counts = 0, self.counts
        nz = np.flatnonzero(counts)
        if not nz.size:
            return 0, np.zeros(0, dtype=np.int64)
        return base + int(nz[0]), counts[nz[0] : nz[-1] + 1]

    @classmethod
    def of_run(
        cls, offset: int, run: np.ndarray, *, total: int, sum_: int, low: int, high: int, clamped: int = 0
    ) -> Histogram:
        """A histogram of ``run`` counts from bucket ``offset`` on, with the given exact extras;
        ``ValueError`` when they do not fit its counts (a run may come from a peer). It keeps
        the run as it is until read: merged into a dense histogram, it is one slice add (a
        farm's coordinator merges a thousand a second)."""
        if offset < 0 or offset + run.size > _LAYOUT.counts_len:
            raise ValueError("histogram buckets out of range")
        if total != int(run.sum()):
            raise ValueError("histogram total does not match its counts")
        if total and not (low <= high <= _LAYOUT.highest and low * total <= sum_ <= high * total):
            raise ValueError("histogram min, max and sum do not fit its counts")
        if clamped > total:
            raise ValueError("histogram clamped count over its total")
        h = cls()
        h.total, h.sum, h.min, h.max, h.clamped = total, sum_, low, high, clamped
        if run.size:
            h._run = (offset, run)
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


def _pname(p: float) -> str:
    return "p" + (f"{p:g}")
