"""HdrHistogram's bucket arithmetic (1 µs to 1 h, 3 significant digits): which bucket a
value lands in and what values a bucket stands for, vectorised with numpy. ``stats.Histogram``
counts in these buckets, so every value lands where ``HdrHistogram.record_value`` puts it."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["HIGHEST_US", "LAYOUT", "LOWEST_US", "PERCENTILES", "SIGNIFICANT_FIGURES"]

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


LAYOUT = _Layout(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
