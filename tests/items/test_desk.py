"""The desk, pure: which item a call takes, and what its outcome makes of the item."""

import pytest

from pusher_farm.items.desk import BufferSupply, Desk, FeedSupply
from pusher_farm.items.item import Retry, Status, Work


def desk(n=3, **kw):
    finals, retries = [], []
    d = Desk(
        FeedSupply(iter([Work(str(i)) for i in range(n)])),
        on_final=lambda item, latency: finals.append((item.id, item.status, item.attempts, item.error)),
        on_retry=lambda item: retries.append((item.id, item.attempts)),
        **kw,
    )
    return d, finals, retries


@pytest.mark.parametrize(
    "error, result, counted, status, item_error, item_result",
    [
        (None, 42, None, Status.SUCCESS, None, 42),
        (None, Status.SUCCESS, None, Status.SUCCESS, None, None),
        (None, Status.FAILURE, "Failure", Status.FAILURE, "Failure", None),
        ("ValueError", None, "ValueError", Status.FAILURE, "ValueError", None),
        ("Timeout", None, "Timeout", Status.FAILURE, "Timeout", None),
        # no retries left (max_retries 0): a retry becomes a failure with its reason
        (None, Status.RETRY, "Retry", Status.FAILURE, "Retry", None),
        (Retry("busy").kind, None, "Retry: busy", Status.FAILURE, "Retry: busy", None),
    ],
)
def test_an_outcome_settles_the_item(error, result, counted, status, item_error, item_result):
    d, finals, _ = desk()
    item = d.take(0.0)
    assert d.settle(item, error, result, 0.01, 0.0) == counted
    assert (item.status, item.error, item.result, item.attempts) == (status, item_error, item_result, 1)
    assert finals == [("0", status, 1, item_error)]


def test_retries_come_back_after_their_delay_and_first():
    d, finals, retries = desk(max_retries=2, retry_delay=1.0)
    a = d.take(0.0)
    assert d.settle(a, "Retry: busy", None, 0.0, 0.0) == "Retry: busy"
    assert retries == [("0", 1)] and d.next_retry() == 1.0
    assert d.take(0.5).id == "1"  # not due yet: the next new item
    assert d.take(1.0) is a and a.attempts == 2  # due: before new items
    d.settle(a, None, Status.RETRY, 0.0, 1.0)
    again = d.take(2.0)
    assert again is a and a.attempts == 3
    d.settle(a, "Retry: still", None, 0.0, 2.0)  # the third attempt was its last
    assert finals == [("0", Status.FAILURE, 3, "Retry: still")]
    assert a.retries == ["Retry: busy", "Retry", "Retry: still"]
    assert d.summary()["attempts"] == {"3": 1} and d.retries == 3


def test_dry_once_the_feed_is_out_and_nothing_waits_or_runs():
    dry = []
    d, _, _ = desk(n=1, max_retries=1)
    d.on_dry = lambda: dry.append(True)
    a = d.take(0.0)
    assert d.take(0.0) is None and d.starved == 1 and not dry  # one in flight
    d.settle(a, "Retry", None, 0.0, 0.0)
    assert not dry  # it waits to be retried
    d.settle(d.take(0.0), None, "ok", 0.0, 0.0)
    assert dry == [True] and d.dry


def test_a_buffer_supply_is_filled_from_elsewhere_and_never_runs_dry_by_itself():
    s = BufferSupply()
    d = Desk(s)
    assert d.take(0.0) is None and not d.dry  # items may still come
    s.put([Work("a"), Work("b")])
    assert len(s) == 2 and d.ready(0.0)
    assert d.take(0.0).id == "a" and d.take(0.0).id == "b"
    assert d.take(0.0) is None and not s.exhausted and not d.dry  # the coordinator ends the run


def test_an_item_whose_call_an_abort_cut_short_is_left_unfinished():
    d, finals, _ = desk(n=2)
    a = d.take(0.0)
    assert d.settle(a, "Interrupted", None, 0.0, 0.0) == "Interrupted"
    assert finals == [] and d.summary()["interrupted"] == 1
