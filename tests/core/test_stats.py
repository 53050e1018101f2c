import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from pusher_farm.core.buckets import HIGHEST_US
from pusher_farm.core.histogram_codec import decode, encode, from_hdr, to_hdr
from pusher_farm.core.stats import Histogram


def values(seed, n):
    rng = np.random.default_rng(seed)
    v = np.concatenate([rng.integers(0, 3000, n // 2), rng.lognormal(8, 2, n - n // 2).astype(np.int64)])
    return np.minimum(v, HIGHEST_US)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_equal_hdrhistogram(seed):
    v = values(seed, 5000)
    ours = Histogram()
    ours.record_many(v)
    ref = HdrHistogram(1, HIGHEST_US, 3)
    for x in v.tolist():
        ref.record_value(x)
    for p in (0, 1, 25, 50, 90, 99, 99.9, 99.99, 100):
        assert ours.percentile(p) == ref.get_value_at_percentile(p)
    assert np.array_equal(np.ctypeslib.as_array(ref.counts), ours.counts)


def test_merge_of_two_equals_one_of_all():
    a, b = values(4, 3000), values(5, 7000)
    ha, hb, hall = Histogram(), Histogram(), Histogram()
    ha.record_many(a)
    hb.record_many(b)
    hall.record_many(np.concatenate([a, b]))
    merged = Histogram.merged([ha, hb])
    assert merged == hall
    assert merged.summary_ms() == hall.summary_ms()


def test_exact_mean_min_max():
    h = Histogram()
    h.record_many([1000, 2000, 3001])
    assert h.mean == pytest.approx(2000.333, abs=0.001)
    assert (h.min, h.max, h.total) == (1000, 3001, 3)


def test_clamps_values_above_one_hour_and_counts_them():
    h = Histogram()
    h.record_many([HIGHEST_US * 2, 5, -3])
    assert h.clamped == 1 and h.max == HIGHEST_US and h.min == 0


def test_sparse_round_trip_and_validation():
    h = Histogram()
    h.record_many(values(6, 1000))
    assert decode(encode(h)) == h
    bad = encode(h)
    bad["n"] += 1
    with pytest.raises(ValueError):
        decode(bad)


def test_hdr_round_trip_and_encoding():
    h = Histogram()
    h.record_many(values(7, 1000))
    hdr = to_hdr(h)
    assert hdr.get_total_count() == h.total
    decoded = HdrHistogram.decode(hdr.encode())
    assert decoded.get_value_at_percentile(99) == h.percentile(99)
    back = from_hdr(decoded)
    assert np.array_equal(back.counts, h.counts)
