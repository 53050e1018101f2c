"""Plan epochs and the accounting of planned slots: tables."""

import pytest

from pusher_farm.cluster.epochs import PlanBook, planned_end
from pusher_farm.core.schedule import Constant


def book_of_three():
    book = PlanBook(Constant(100, 10))
    book.open([("a", "a", 1.0), ("b", "b", 1.0), ("c", "c", 1.0)], from_slot=0, at_s=0.0, reason="start")
    book.open([("a", "a", 1.0), ("c", "c", 1.0)], from_slot=300, at_s=3.0, reason="b lost")
    return book


@pytest.mark.parametrize(
    ("agent", "upto", "owned"),
    [("a", 300, 100), ("b", 300, 100), ("c", 300, 100), ("a", 1000, 450), ("b", 1000, 100), ("c", 1000, 450)],
)
def test_every_slot_has_one_owner_in_every_epoch(agent, upto, owned):
    assert book_of_three().owned(agent, upto) == owned


def test_owned_slots_add_up_to_the_planned_ones():
    book = book_of_three()
    for upto in (0, 1, 299, 300, 301, 777, 1000):
        assert sum(book.owned(x, upto) for x in "abc") == upto


def test_a_lost_agent_s_unfired_slots_lie_between_its_stop_and_the_epoch():
    book = book_of_three()
    share = book.share("b", planned_end=1000, scheduled=80, reported_s=2.4, end_s=10.0)
    assert (share.planned, share.scheduled, share.unfired) == (100, 80, 20)
    assert (share.from_s, share.to_s) == (2.4, 3.0)
    kept = book.share("a", planned_end=1000, scheduled=450, reported_s=10.0, end_s=10.0)
    assert kept.unfired == 0 and kept.from_s is None
    assert book.share_moved("b").reason == "b lost" and book.share_moved("a") is None


@pytest.mark.parametrize(
    ("cut", "reaches", "stop_s", "end"),
    [
        (False, [], None, 1000),  # ran to the end: the whole profile
        (False, [400], 4.0, 1000),  # an agent's early stop does not shorten the plan
        (True, [400, 402, 401], 3.9, 402),  # cut: as far as the agents got
        (True, [], 4.5, 450),  # cut, nobody said: the slot due at the stop
        (True, [5000], None, 1000),  # never past the profile
    ],
)
def test_planned_end(cut, reaches, stop_s, end):
    assert planned_end(Constant(100, 10), 10.0, cut=cut, reaches=reaches, stop_s=stop_s) == end
