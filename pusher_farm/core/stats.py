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
        # Dense counts, made on first need: a histogram decoded from the wire stays sparse
        # (non-zero bucket indices and their counts) until something reads it bucket by bucket,
        # so merging it costs one fancy-index add, not a 23,552-bucket array.
        self._dense: np.ndarray | None = None
        self._sparse: tuple[np.ndarray, np.ndarray] | None = None
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
                index, values = self._sparse
                self._dense[index] = values
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
            return self._sparse
        nz = np.flatnonzero(self._dense)
        return nz, self._dense[nz]

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
            index, values = other._sparse
            self.counts[index] += values  # indices are unique: a plain fancy-index add
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

    # -- sparse form for the wire ----------------------------------------------------------

    def to_sparse(self) -> dict[str, Any]:
        """Non-zero buckets, compactly: index deltas (uint16) and counts in the narrowest
        unsigned type that holds them, zlib-compressed; plus the exact extras."""
        index, values = self.nonzero()
        deltas = np.diff(index, prepend=0).astype(np.uint16)
        top = int(values.max()) if values.size else 0
        width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
        raw = deltas.tobytes() + values.astype(f"<u{width}").tobytes()
        return {
            "z": zlib.compress(raw, 1),
            "k": int(index.size),
            "b": width,
            "n": self.total,
            "s": self.sum,
            "lo": self.min,
            "hi": self.max,
            "x": self.clamped,
        }

    @classmethod
    def from_sparse(cls, data: dict[str, Any]) -> Histogram:
        """The histogram ``to_sparse`` encoded; ``ValueError`` for anything inconsistent."""
        h = cls()
        k, width = int(data["k"]), int(data["b"])
        if width not in (1, 2, 4, 8) or not 0 <= k <= _LAYOUT.counts_len:
            raise ValueError("histogram encoding out of range")
        d = zlib.decompressobj()
        raw = d.decompress(data["z"], 2 * k + width * k + 1)
        if len(raw) != (2 + width) * k or d.unconsumed_tail:
            raise ValueError("histogram payload has the wrong size")
        deltas = np.frombuffer(raw, dtype="<u2", count=k)
        index = np.cumsum(deltas, dtype=np.int64)
        counts = np.frombuffer(raw, dtype=f"<u{width}", offset=2 * k, count=k).astype(np.int64)
        # Strictly ascending indices (no delta of 0 after the first) within the layout; counts
        # are unsigned by construction, but 8-byte ones could wrap to negative as int64.
        if k and (int(index[-1]) >= _LAYOUT.counts_len or not deltas[1:].all() or (width == 8 and counts.min() < 0)):
            raise ValueError("histogram buckets out of range")
        if k:
            h._sparse = (index, counts)
        h.total = int(data["n"])
        if h.total != int(counts.sum()):
            raise ValueError("histogram total does not match its counts")
        h.sum = int(data["s"])
        h.min = int(data["lo"])
        h.max = int(data["hi"])
        h.clamped = int(data.get("x", 0))
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


def _pname(p: float) -> str:
    return "p" + (f"{p:g}")
