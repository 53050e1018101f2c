"""The pacer, a pure function of (due, now): tables, no clock."""

import math

import pytest

from pusher_farm.core.pacer import Pacer

BATCH = 0.004


@pytest.mark.parametrize(
    ("due", "now", "wait"),
    [
        (1.000, 1.000, None),  # due now: launch
        (1.000, 1.500, None),  # late: launch at once
        (1.010, 1.000, 0.010),  # early: sleep until due
        (1.0005, 1.000, 0.001),  # under a timer tick away: sleep a whole tick (uvloop would spin)
    ],
)
def test_a_first_slot_waits_until_it_is_due(due, now, wait):
    assert Pacer(batch=BATCH, spin=0.0).wait(due, now) == (None if wait is None else pytest.approx(wait))


def test_slots_due_within_the_batch_go_with_the_wake_up():
    pacer = Pacer(batch=BATCH, spin=0.0)
    assert pacer.wait(1.000, 1.000) is None  # a wake-up at 1.000: the batch runs to 1.004
    rows = [(1.001, None), (1.0039, None), (1.0041, pytest.approx(0.0041))]
    for due, expected in rows:
        assert pacer.wait(due, 1.000) == expected
    assert pacer.early == 2


def test_at_most_sixteen_early_slots_per_wake_up():
    pacer = Pacer(batch=BATCH, spin=0.0, most_early=16)
    assert pacer.wait(1.0, 1.0) is None
    launched = [pacer.wait(1.0 + i * 1e-5, 1.0) for i in range(1, 20)]
    assert launched[:16] == [None] * 16
    assert launched[16] == pytest.approx(0.001)  # the 17th waits for a wake-up of its own


def test_spin_busy_waits_the_last_stretch_and_never_batches():
    pacer = Pacer(batch=BATCH, spin=0.002)
    assert pacer.wait(1.010, 1.000) == pytest.approx(0.008)  # sleep until 2 ms before
    assert pacer.wait(1.010, 1.0085) == 0.0  # then yield and look again
    assert pacer.wait(1.010, 1.010) is None
    assert pacer.wait(1.0101, 1.010) == 0.0  # no batch with spin: the next slot spins too


def test_batch_zero_wakes_up_for_every_slot():
    pacer = Pacer(batch=0.0, spin=0.0)
    assert pacer.wait(1.0, 1.0) is None
    assert pacer.wait(1.0005, 1.0) == pytest.approx(0.001)
    assert pacer.horizon == 1.0 and not math.isinf(pacer.horizon)
