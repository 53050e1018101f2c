"""Plan epochs and the accounting of planned slots: tables, on the coordinator's books and on
one executor's plan (both count a shard's slots the same way)."""

import math

import pytest

from pusher_farm.cluster.coordinator.books import FarmEpoch, PlanBook
from pusher_farm.core.epochs import HALT, Epoch, Plan
from pusher_farm.core.load import Open
from pusher_farm.core.schedule import Constant
from pusher_farm.core.shard import Shard


def book_of_three():
    first = FarmEpoch(0.0, (0,), *FarmEpoch.deal([("a", "a", 1.0), ("b", "b", 1.0), ("c", "c", 1.0)]), "start")
    second = FarmEpoch(3.0, (300,), *FarmEpoch.deal([("a", "a", 1.0), ("c", "c", 1.0)]), "b lost")
    return PlanBook([first, second], 0)


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


def test_an_executor_s_plan_counts_its_slots_as_the_books_do():
    book = book_of_three()
    for agent, index in (("a", 0), ("c", 2)):
        plan = Plan(Shard(index, (1.0, 1.0, 1.0)))
        plan.add(Epoch(3.0, 300, Shard(index // 2, (1.0, 1.0))))
        for upto in (0, 299, 300, 1000):
            assert plan.owned(0, upto) == book.owned(agent, upto)


def test_a_halt_is_final_and_ends_what_a_plan_owns():
    plan = Plan(Shard(0, (1.0, 1.0)))
    plan.add(Epoch(2.0, 200, HALT))
    plan.add(Epoch(3.0, 300, None))  # after the halt: changes nothing
    assert plan.at_slot(199) == (Shard(0, (1.0, 1.0)), 200) and plan.at_slot(250)[0] is HALT
    assert plan.owned(0, 1000) == 100 and plan.halt_slot() == 200 and plan.halt_s() == 2.0
    assert plan.at_time(2.5) is HALT and plan.at_time(1.0) == Shard(0, (1.0, 1.0))


def test_a_late_plan_supersedes_what_was_announced_after_its_point():
    plan = Plan(Shard(0, (1.0, 1.0)))
    plan.add(Epoch(1.2, 120, None))
    plan.add(Epoch(0.6, 60, Shard(1, (1.0, 1.0))))  # arrives last: the books say it holds from 60 on
    assert [e.first for e in plan.epochs] == [0, 60] and plan.at_slot(130)[0] == Shard(1, (1.0, 1.0))
    assert plan.at_time(-1.0) is False and Plan(None, from_s=2.0).at_time(1.0) is False  # nothing ours yet


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
    assert Open(Constant(100, 10)).planned_end(cut=cut, reaches=reaches, stop_s=stop_s) == end


def test_an_open_ended_run_planned_what_its_agents_reached():
    assert Open(Constant(100)).planned_end(cut=True, reaches=[321], stop_s=3.0) == 321
    assert math.isinf(Open(Constant(100)).length())
