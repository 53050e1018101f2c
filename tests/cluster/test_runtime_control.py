"""Runtime control of every run, on the simulator (the product's coordinator, agents and
executors on a virtual clock): a scenario's rate, another's users, a drain's lanes (Gofherd's
herd size) change from one announced instant on every agent, the others stay as they were, and
every slot and every item is still accounted for, also when an agent is lost."""

import re

import pytest
from sim import SimFarm, run_of

from pusher_farm.core.config import Config
from pusher_farm.core.load import Closed, Drain, Open
from pusher_farm.core.schedule import Constant
from pusher_farm.errors import InvalidOption


def three(items=6000):
    """An open scenario, a closed one and a drain with its own feed, 20 s."""
    return run_of(
        Config(name="browse", target="noop", load=Open(Constant(300, 20)), timeout=1.0),
        Config(name="users", target="sleep", params={"ms": 10}, load=Closed(Constant(6, 20)), timeout=1.0),
        Config(
            name="work",
            target="sleep",
            params={"ms": 20},
            load=Drain(Constant(10)),
            timeout=1.0,
            feed=[{"id": i} for i in range(items)],
        ),
    )


def concurrency(farm, scenario, lo, hi):
    """The most calls of ``scenario`` in flight across the farm among calls started in [lo, hi)
    (seconds from the run's start)."""
    t0 = farm.started_at()
    return max((n for t, n in farm.starts[scenario] if lo <= t - t0 < hi), default=0)


def starts(farm, scenario, lo, hi):
    t0 = farm.started_at()
    return sum(1 for t, _ in farm.starts[scenario] if lo <= t - t0 < hi)


def ended(c):
    return c.succeeded + c.failed + c.canceled


def accounted_by_scenario(report):
    """planned == scheduled + unfired per scenario, agent and run; scheduled == succeeded + failed
    + canceled but for a killed agent's calls in flight, whose end it never got to report."""
    never_ended = sum(a.counts.scheduled - ended(a.counts) for a in report.agents if a.lost)
    for a in report.agents:
        assert a.counts.planned == a.counts.scheduled + a.counts.unfired, a.name
        assert a.counts.scheduled == ended(a.counts) or a.lost, a.name
    for row in report.scenarios:
        c = row.counts
        assert c.planned == c.scheduled + c.unfired, row.name
    c = report.counts
    assert c.planned == sum(row.counts.planned for row in report.scenarios) == c.scheduled + c.unfired
    assert sum(a.counts.planned for a in report.agents) == c.planned
    assert c.scheduled == ended(c) + never_ended == sum(ended(row.counts) for row in report.scenarios) + never_ended


def changed_three_ways(farm):
    """Change the rate at 2 s, the users at 4 s, the drain's lanes 10 -> 0 at 6 s, -> 20 at 9 s."""
    farm.at(2.0)
    rate = farm.coord.change("browse", rps=600)
    farm.at(4.0)
    users = farm.coord.change("users", users=12)
    farm.at(6.0)
    paused = farm.coord.change("work", parallel=0)
    farm.at(9.0)
    resumed = farm.coord.change("work", parallel=20)
    return rate, users, paused, resumed


@pytest.mark.parametrize("kill", [False, True], ids=["three agents", "one killed midway"])
def test_three_scenarios_change_at_one_instant_and_every_slot_and_item_is_accounted(kill):
    farm = SimFarm(three(), expect=3)
    for name in ("a", "b", "c"):
        farm.agent(name)
    rate, users, paused, resumed = changed_three_ways(farm)
    if kill:
        farm.at(10.5)
        farm.agents["b"].kill()
    r = farm.finish()
    accounted_by_scenario(r)
    rows = {s.name: s for s in r.scenarios}

    # the rate: 300/s up to its instant, 600/s after it, on every agent (each slot once, none missing)
    at = rate["at_s"]
    assert 2.0 < at < 3.0 and rate["from_slot"] == pytest.approx(300 * at, abs=1)
    planned = rows["browse"].counts.planned
    assert planned == pytest.approx(300 * at + 600 * (20 - at), abs=2)
    fired = [k for a in farm.agents.values() for k in a.runner.fired_by["browse"]]
    assert len(fired) == len(set(fired)), "a slot fired twice"
    if not kill:
        assert sorted(fired) == list(range(planned)) and rows["browse"].counts.unfired == 0
    else:  # the killed agent's share between its last report and the epoch that moved it
        assert 0 < rows["browse"].counts.unfired < 600 * 5

    # the users: 6 up to their instant, 12 after it (the others' changes left them alone)
    at = users["at_s"]
    assert concurrency(farm, "users", 0, at) == 6
    assert concurrency(farm, "users", at + 0.1, 20) == 12

    # the herd: 10 lanes, none from the pause's instant to the resume's, then 20
    stop, go = paused["at_s"], resumed["at_s"]
    assert concurrency(farm, "work", 0, stop) == 10
    assert starts(farm, "work", stop, go) == 0  # in flight drops to 0 at once and stays
    assert farm.in_flight["work"][1] == 20 and concurrency(farm, "work", go + 0.1, 30) == 20

    # every item done exactly once (a killed agent's items go to the others)
    items = r.items
    assert items["by_status"] == {"success": 6000} and items["unprocessed"] == 0
    assert set(farm.worked["work"]) == {str(i) for i in range(6000)}
    assert [e.reason for e in r.epochs[:4]] == [
        "scenario 'browse' changed: rps 300 -> 600",
        "scenario 'users' changed: users 6 -> 12",
        "scenario 'work' changed: parallel 10 -> 0",
        "scenario 'work' changed: parallel 0 -> 20",
    ]
    if kill:
        assert r.status == 1 and [a.name for a in r.agents if a.lost] == ["b"]
        assert r.epochs[-1].reason == "b lost" and items["reissued"] > 0


def test_gofherds_herd_pauses_at_zero_and_grows_at_forty():
    """A drain of 2,000 items at parallel 10; PATCH 0: calls in flight drop to 0 within a report
    window and stay there; PATCH 40: they reach 40 (the target's own concurrency counter)."""
    run = run_of(Config(name="herd", target="sleep", params={"ms": 50}, load=Drain(Constant(10)), timeout=5.0,
                        feed=[{"id": i} for i in range(2000)]))  # fmt: skip
    farm = SimFarm(run, expect=2)
    farm.agent("a"), farm.agent("b")
    farm.at(1.0)
    paused = farm.coord.change(parallel=0)  # the only scenario: no name needed
    farm.at(paused["at_s"] + 1.0)  # a report window later
    assert farm.in_flight["herd"][0] == 0
    farm.at(paused["at_s"] + 3.0)
    assert farm.in_flight["herd"][0] == 0 and starts(farm, "herd", paused["at_s"], paused["at_s"] + 3.0) == 0
    done_before = len(farm.worked["herd"])
    grown = farm.coord.change(parallel=40)
    farm.at(grown["at_s"] + 0.5)
    assert farm.in_flight["herd"][1] == 40 and len(farm.worked["herd"]) > done_before
    r = farm.finish()
    assert r.items["by_status"] == {"success": 2000} and r.status == 0
    assert concurrency(farm, "herd", 0, paused["at_s"]) == 10


def test_a_change_the_run_cannot_take_is_refused_and_changes_nothing():
    farm = SimFarm(three(items=3000), expect=1)
    farm.agent("a")
    farm.at(1.0)
    for scenario, change, words in [
        (None, {"rps": 10}, "name the one to change"),
        ("nosuch", {"rps": 10}, "no scenario 'nosuch'"),
        ("browse", {"users": 10}, "scenario 'browse': an open model (a rate) changes rps, not users"),
        ("users", {"rps": 10}, "scenario 'users': a closed model (users) changes users, not rps"),
        ("work", {"users": 3}, "changes parallel or rps, not users"),
        ("work", {"parallel": 20, "overtime": 5}, "scenario 'work': parallel 20 is more than overtime 5"),
        ("users", {"users": 2_000_000}, "users must be a whole number in 0..1,000,000"),
    ]:
        with pytest.raises(InvalidOption, match=re.escape(words)):
            farm.coord.change(scenario, **change)
    assert len(farm.coord.state.planner.epochs) == 1  # nothing was announced
    r = farm.finish()
    assert r.epochs == [] and r.status == 0
