import math

import numpy as np
import pytest

from pusher_farm.core.schedule import (
    Constant,
    Stage,
    Stages,
    parse_duration,
    parse_stages,
    slot_batches,
)
from pusher_farm.core.shard import Shard
from pusher_farm.errors import InvalidOption, InvalidRPS


def all_slots(profile, **kw):
    ks, ts = [], []
    for k, t in slot_batches(profile, **kw):
        ks += k
        ts += t
    return ks, ts


@pytest.mark.parametrize(
    ("rate", "duration", "count", "first_times"),
    [
        (200, 2, 400, [0.0, 0.005, 0.01]),
        (0.5, 4, 2, [0.0, 2.0]),
        (3, 1, 3, [0.0, 1 / 3, 2 / 3]),
        (1, 1, 1, [0.0]),
        (1000, 0.0015, 2, [0.0, 0.001]),
        (7.5, 2, 15, [0.0, 2 / 15]),
    ],
)
def test_constant_rate_slots(rate, duration, count, first_times):
    ks, ts = all_slots(Constant(rate, duration))
    assert len(ks) == count == Constant(rate, duration).slot_count()
    assert ks == list(range(count))
    assert ts[: len(first_times)] == pytest.approx(first_times)
    assert all(t < duration for t in ts)


def test_constant_rate_has_no_drift_after_an_hour():
    p = Constant(1000.0)
    t = p.times(np.array([3_600_000]))[0]
    assert t == 3600.0


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ([Stage(10, 0, 100)], 500),
        ([Stage(10, 100, 0)], 500),
        ([Stage(30, 0, 1000), Stage(60, 1000, 1000), Stage(10, 1000, 0)], 15000 + 60000 + 5000),
        ([Stage(2, 10, 10), Stage(2, 0, 0), Stage(2, 10, 10)], 40),
        ([Stage(4, 1, 3)], 8),
    ],
)
def test_stage_slot_count_matches_integral(stages, expected):
    profile = Stages(stages)
    ks, ts = all_slots(profile)
    assert abs(len(ks) - expected) <= 1
    assert len(ks) == profile.slot_count()
    assert ts == sorted(ts)
    # Each slot k is due where the integral reaches k.
    for k, t in list(zip(ks, ts, strict=True))[:: max(1, len(ks) // 50)]:
        assert profile.slots_until(t) == pytest.approx(k, abs=1e-6)


def test_ramp_spacing_follows_the_rate():
    profile = Stages([Stage(10, 0, 100)])
    _ks, ts = all_slots(profile)
    gaps = np.diff(ts)
    assert gaps[10] > gaps[100] > gaps[400]
    # Near t=9s the rate is 90/s.
    i = int(np.searchsorted(ts, 9.0))
    assert 1 / gaps[i] == pytest.approx(90, rel=0.02)


def test_a_cut_ends_a_profile_where_it_says():
    ks, _ = all_slots(Constant(100).cut(1.5))
    assert len(ks) == 150
    ramp = parse_stages("10s:0-100,10s:100")
    cut = ramp.cut(5)
    assert cut.duration == 5 and cut.stages[-1].end == pytest.approx(50) and cut.slot_count() == 125
    assert ramp.cut(None) is ramp and ramp.cut(60) is ramp


@pytest.mark.parametrize(
    ("stages", "at", "rate", "before", "after"),
    [
        ("10s:100", 4.0, 300, 400, 1800),  # a higher rate from 4 s on: the first 400 slots unmoved
        ("10s:0-100", 5.0, 0, 125, 0),  # rate 0 from 5 s: a pause (drain lanes, users)
        ("2s:0,8s:50", 6.0, 10, 200, 40),  # a later start kept as it was
    ],
)
def test_a_change_keeps_every_slot_before_it(stages, at, rate, before, after):
    old = parse_stages(stages)
    new = old.then(at, rate)
    assert new.duration == old.duration and new.slots_until(at) == pytest.approx(before)
    assert new.slot_count() == before + after
    ks = np.arange(before)
    assert np.allclose(new.times(ks), old.times(ks))  # same slots at the same times before the change


def test_a_profile_scales_and_says_when_it_begins():
    p = parse_stages("3s:0,2s:0-10,5s:10")
    assert p.begins == 3 and p.peak == 10 and p.scaled(3).peak == 30
    assert p.scaled(3).slot_count() == 3 * p.slot_count()


@pytest.mark.parametrize(
    ("weights", "n"),
    [((1, 1), 100), ((1, 1, 1), 99), ((2, 1), 90), ((0.3, 0.7), 100), ((1, 1, 1, 1), 1000), ((5, 3, 2), 777)],
)
def test_shards_partition_the_global_slots(weights, n):
    profile = Constant(100, n / 100)
    owned = [all_slots(profile, shard=Shard(i, weights))[0] for i in range(len(weights))]
    merged = sorted(k for ks in owned for k in ks)
    assert merged == list(range(n))
    total = sum(weights)
    for ks, w in zip(owned, weights, strict=True):
        assert abs(len(ks) - n * w / total) <= len(weights)


def test_equal_shards_alternate():
    a = all_slots(Constant(100, 1), shard=Shard(0, (1, 1)))[0]
    b = all_slots(Constant(100, 1), shard=Shard(1, (1, 1)))[0]
    assert a[:4] == [0, 2, 4, 6]
    assert b[:4] == [1, 3, 5, 7]


def test_shard_first_slot_skips_earlier_slots():
    ks, _ = all_slots(Constant(100, 1), shard=Shard(1, (1, 1, 1)), first=50)
    assert ks[0] >= 50 and all(k % 3 == 1 for k in ks)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1.5", 1.5), ("250us", 0.00025), (" 5m ", 300)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s", "0", "s", "5s5", "inf", "nan"])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidOption):
        parse_duration(text)


def test_parse_stages():
    p = parse_stages("30s:0-1000,60s:1000,10s:1000-0")
    assert p.stages == (Stage(30, 0, 1000), Stage(60, 1000, 1000), Stage(10, 1000, 0))
    assert p.duration == 100


@pytest.mark.parametrize("text", ["30s", "30s:", "x:10", "30s:a-b", "30s:0,10s:0", "10s:-5"])
def test_parse_stages_rejects(text):
    with pytest.raises((InvalidOption, InvalidRPS)):
        parse_stages(text)


@pytest.mark.parametrize("rate", [0, -1, math.inf, math.nan, "10", True])
def test_constant_rejects_bad_rates(rate):
    with pytest.raises(InvalidRPS):
        Constant(rate, 1)


def test_tiny_and_huge_weights_still_give_every_shard_slots():
    for weights in [(1e-6, 1.0), (1e-6, 1e6), (0.0001, 0.0001, 1.0)]:
        counts = [Shard(i, weights).count(0, 100_000) for i in range(len(weights))]
        assert all(c > 0 for c in counts) and sum(counts) == 100_000
