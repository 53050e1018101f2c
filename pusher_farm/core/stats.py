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

import math
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = ["Histogram", "LOWEST_US", "HIGHEST_US", "SIGNIFICANT_FIGURES", "PERCENTILES"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour in microseconds
SIGNIFICANT_FIGURES = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class _Layout:
    """HdrHistogram's bucket arithmetic for one (lowest, highest, figures) triple."""

    def __init__(self, lowest: int, highest: int, figures: int) -> None:
        self.unit_magnitude = math.floor(math.log(lowest) / math.log(2))
        largest_single_unit = 2 * 10**figures
        sub_count_mag = math.ceil(math.log(largest_single_unit) / math.log(2))
        self.half_mag = sub_count_mag - 1 if sub_count_mag > 1 else 0
        self.sub_count = 1 << (self.half_mag + 1)
        self.half_count = self.sub_count // 2
        self.sub_mask = (self.sub_count - 1) << self.unit_magnitude
        smallest_untrackable = self.sub_count << self.unit_magnitude
        buckets = 1
        while smallest_untrackable <= highest:
            smallest_untrackable <<= 1
            buckets += 1
        self.bucket_count = buckets
        self.counts_len = (buckets + 1) * self.half_count
        self.highest = highest
        index = np.arange(self.counts_len, dtype=np.int64)
        self.lowest_values = self._value_from_index(index)
        self.highest_values = self._highest_equivalent(self.lowest_values)

    def index_of(self, values: np.ndarray) -> np.ndarray:
        """Counts index of each value (int64 array, 0 <= value <= highest)."""
        masked = values | self.sub_mask
        # bit_length via frexp: exact for integers below 2**53.
        _, bit_length = np.frexp(masked.astype(np.float64))
        bucket = bit_length.astype(np.int64) - self.unit_magnitude - (self.half_mag + 1)
        sub_bucket = values >> (bucket + self.unit_magnitude)
        return ((bucket + 1) << self.half_mag) + sub_bucket - self.half_count

    def _value_from_index(self, index: np.ndarray) -> np.ndarray:
        bucket = (index >> self.half_mag) - 1
        sub_bucket = (index & (self.half_count - 1)) + self.half_count
        low = bucket < 0
        sub_bucket = np.where(low, sub_bucket - self.half_count, sub_bucket)
        bucket = np.where(low, 0, bucket)
        return sub_bucket << (bucket + self.unit_magnitude)

    def _highest_equivalent(self, lowest: np.ndarray) -> np.ndarray:
        masked = lowest | self.sub_mask
        _, bit_length = np.frexp(masked.astype(np.float64))
        bucket = bit_length.astype(np.int64) - self.unit_magnitude - (self.half_mag + 1)
        sub_bucket = lowest >> (bucket + self.unit_magnitude)
        bucket = np.where(sub_bucket >= self.sub_count, bucket + 1, bucket)
        return lowest + (np.int64(1) << (self.unit_magnitude + bucket)) - 1


_LAYOUT = _Layout(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


class Histogram:
    """Counts of integer microsecond values in HdrHistogram's buckets, plus exact sum/min/max.

    Values above one hour are recorded as one hour and counted in ``clamped``.
    """

    __slots__ = ("_dense", "_sparse", "total", "sum", "min", "max", "clamped")

    layout = _LAYOUT

    def __init__(self) -> None:
        # Dense counts, made on first need: a histogram decoded from the wire stays a run (the
        # counts from its first to its last non-empty bucket) until something reads it bucket by
        # bucket, so merging it costs one slice add, not a 23,552-bucket array.
        self._dense: np.ndarray | None = None
        self._sparse: tuple[int, np.ndarray] | None = None  # (first bucket, unsigned counts)
        self.total = 0
        self.sum = 0
        self.min = 0
        self.max = 0
        self.clamped = 0

    @property
    def counts(self) -> np.ndarray:
        """All bucket counts (int64, HdrHistogram's index order)."""
        if self._dense is None:
            self._dense = np.zeros(_LAYOUT.counts_len, dtype=np.int64)
            if self._sparse is not None:
                offset, run = self._sparse
                self._dense[offset : offset + run.size] = run
        self._sparse = None
        return self._dense

    @counts.setter
    def counts(self, value: np.ndarray) -> None:
        self._dense = value
        self._sparse = None

    def nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        """(bucket indices, counts) of the non-empty buckets, indices ascending."""
        if self._dense is None:
            if self._sparse is None:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
            offset, run = self._sparse
            nz = np.flatnonzero(run)
            return nz + offset, run[nz]
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
        self.counts += np.bincount(index, minlength=_LAYOUT.counts_len)
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
        if other._dense is None and other._sparse is not None:
            offset, run = other._sparse
            self.counts[offset : offset + run.size] += run  # a slice add: no index array
        else:
            self.counts += other.counts
        self.min = other.min if self.total == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.total += other.total
        self.sum += other.sum
        self.clamped += other.clamped

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
        cumulative = np.cumsum(self.counts)
        out: dict[float, int] = {}
        for p in ps:
            target = max(int(min(p, 100.0) * self.total / 100 + 0.5), 1)
            i = int(np.searchsorted(cumulative, target, side="left"))
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
        if self._dense is None and self._sparse is not None:
            base, counts = self._sparse  # a decoded run, possibly with empty ends after merges
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
            h._sparse = (offset, run)
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
