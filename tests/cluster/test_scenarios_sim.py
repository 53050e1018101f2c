"""Runs of scenarios on the simulator (the product's coordinator, agents and executors on a
virtual clock): every scenario sharded among the agents on its own slot numbers (or users, or
lanes); a lost agent's share of every scenario moves and a late one takes a share of each, from
one instant; each scenario with a feed of its own, its items and results its own."""

import json

import pytest
from sim import TIMING, SimFarm, run_of

from pusher_farm.cluster.timing import Timing
from pusher_farm.core.config import Config
from pusher_farm.core.load import Closed, Drain, Open
from pusher_farm.core.scenario import Scenario, build_run
from pusher_farm.core.schedule import Constant, Stage, Stages


def rows(report):
    return {s.name: s for s in report.scenarios}


def accounted(report):
    for row in report.scenarios:
        c = row.counts
        assert c.planned == c.scheduled + c.unfired, row.name
    c = report.counts
    assert c.planned == sum(row.counts.planned for row in report.scenarios) == c.scheduled + c.unfired
    assert sum(a.counts.planned for a in report.agents) == c.planned
    for a in report.agents:
        assert a.counts.planned == a.counts.scheduled + a.counts.unfired, a.name


def fired(farm, scenario):
    out = [k for a in farm.agents.values() for k in a.runner.fired_by[scenario]]
    assert len(out) == len(set(out)), f"a slot of {scenario} fired twice"
    return sorted(out)


MIX = build_run(
    [
        Scenario("browse", "noop", rps=300),
        Scenario("search", "noop", rps=50),
        Scenario("checkout", "noop", start="5s", stages="15s:0-50"),
    ],
    duration="20s",
)


def test_three_scenarios_on_two_agents_count_exactly_and_interleave():
    farm = SimFarm(MIX, expect=2)
    farm.agent("a"), farm.agent("b")
    r = farm.finish()
    accounted(r)
    expected = {"browse": 6000, "search": 1000, "checkout": Stages([Stage(5, 0, 0), Stage(15, 0, 50)]).slot_count()}
    assert expected["checkout"] == 375
    for name, n in expected.items():
        assert fired(farm, name) == list(range(n))  # every slot once, whoever fired it
        row = rows(r)[name]
        assert row.counts.planned == row.counts.scheduled == n and row.model == "open"
        per_agent = [a.scenarios[name] for a in r.agents]
        assert sum(per_agent) == n and max(per_agent) - min(per_agent) <= 1  # equal agents alternate
    assert rows(r)["checkout"].start_s == 5 and rows(r)["checkout"].load == "from 5s: 15s:0-50"
    first = min(t for t, _ in farm.starts["checkout"]) - farm.started_at()
    assert 4.995 <= first < 5.1  # its slot 0 is due at its start (a wake-up may launch it 4 ms early)


def test_closed_model_users_split_among_agents_and_iterations_are_exact():
    run = run_of(Config(name="users", target="sleep", params={"ms": 10}, load=Closed(Constant(20), iterations=5)))
    farm = SimFarm(run, expect=2)
    farm.agent("a"), farm.agent("b")
    r = farm.finish()
    accounted(r)
    c = r.counts
    assert c.succeeded == c.scheduled == c.planned == 100 and c.canceled == 0
    assert sorted(a.counts.scheduled for a in r.agents) == [50, 50]  # ten users each
    assert farm.in_flight["users"][1] == 20 and r.lag.max == 0  # a closed loop: latency is service time


def test_think_time_paces_each_user():
    run = run_of(Config(name="u", target="sleep", params={"ms": 10}, load=Closed(Constant(20, 10), think=(0.09, 0.09))))
    farm = SimFarm(run, expect=2)
    farm.agent("a"), farm.agent("b")
    r = farm.finish()
    assert r.counts.succeeded == pytest.approx(20 * 10 / 0.100, rel=0.02)  # 2,000: one call per 100 ms per user


def test_a_lost_agent_s_share_of_every_scenario_moves_to_the_others():
    run = build_run([Scenario("open", "noop", rps=300), Scenario("closed", "sleep", params={"ms": 10}, users=6)],
                    duration="8s", settings=Config())  # fmt: skip
    farm = SimFarm(run, expect=3, timing=Timing(**{**TIMING.__dict__, "agent_timeout": 1.0, "heartbeat": 0.3}))
    for name in ("a0", "a1", "a2"):
        farm.agent(name)
    farm.at(4.0)
    farm.agents["a1"].kill()
    r = farm.finish()
    accounted(r)
    assert r.status == 1 and [a.name for a in r.agents if a.lost] == ["a1"]
    row = rows(r)["open"].counts
    assert row.planned == 2400 and row.unfired == next(a for a in r.agents if a.lost).counts.unfired > 0
    assert rows(r)["closed"].counts.unfired == 0  # a closed model planned the calls it started
    (epoch,) = r.epochs
    assert epoch.reason == "a1 lost"
    assert [k for k in fired(farm, "open") if k >= epoch.from_slot] == list(range(epoch.from_slot, 2400))
    # the closed model's users moved too: six users in all after the epoch, on two agents
    after = [n for t, n in farm.starts["closed"] if t - farm.started_at() > epoch.at_s + 0.1]
    assert max(after) == 6 and len(farm.agents["a1"].runner.fired_by["closed"]) > 0


def test_a_late_agent_takes_a_share_of_every_scenario():
    run = build_run([Scenario("open", "noop", rps=300), Scenario("closed", "sleep", params={"ms": 10}, users=6)],
                    duration="8s")  # fmt: skip
    farm = SimFarm(run, expect=2)
    farm.agent("a0"), farm.agent("a1")
    farm.at(3.0)
    late = farm.agent("late")
    r = farm.finish()
    accounted(r)
    assert r.status == 0 and r.counts.unfired == 0
    (epoch,) = r.epochs
    assert epoch.reason == "late joined" and 3.0 < epoch.at_s < 4.5
    assert fired(farm, "open") == list(range(2400))
    # from the epoch on, the open slots are dealt three ways, and the users too (two each)
    mine = late.runner.fired_by["open"]
    assert mine[0] >= epoch.from_slot and abs(len(mine) - (2400 - epoch.from_slot) / 3) <= 1
    assert len(late.runner.fired_by["closed"]) > 0
    users = {a.name: a.scenarios["closed"] for a in r.agents}
    assert users["late"] > 0 and all(n > 0 for n in users.values())


def test_each_scenario_has_its_own_feed_items_and_results(tmp_path):
    """A drain and a rate-mode scenario with feeds of their own, beside an open one without: each
    feed's items once in its own results; the rate-mode feed running dry stops its scenario only."""
    drained, rated = tmp_path / "drained.jsonl", tmp_path / "rated.jsonl"
    run = build_run(
        [
            Scenario("open", "noop", rps=100),
            Scenario("images", "sleep", params={"ms": 5}, feed=[{"id": f"i{n}"} for n in range(900)], drain=True,
                     parallel=6, results=str(drained)),
            Scenario("lookups", "sleep", params={"ms": 1}, feed=[{"id": f"l{n}"} for n in range(300)], rps=100,
                     results=str(rated)),
        ],
        duration="8s",
    )  # fmt: skip
    farm = SimFarm(run, expect=2)
    farm.agent("a"), farm.agent("b")
    r = farm.finish()
    farm.close()  # the handlers write their last lines
    accounted(r)
    by = rows(r)
    assert by["images"].items["by_status"] == {"success": 900}
    assert by["lookups"].items["by_status"] == {"success": 300}
    assert by["open"].items is None and by["open"].counts.scheduled == 800  # untouched by the others' feeds
    assert r.items["by_status"] == {"success": 1200} and set(r.items["feeds"]) == {"images", "lookups"}
    for path, prefix, n in ((drained, "i", 900), (rated, "l", 300)):
        ids = sorted(json.loads(line)["id"] for line in path.read_text().splitlines())
        assert ids == sorted(f"{prefix}{k}" for k in range(n))
    # the rate-mode feed ran dry at 3 s (300 items at 100/s): its scenario stopped there (the
    # slots due until the stop's instant found no item: canceled, counted as starved)
    c = by["lookups"].counts
    assert c.succeeded == 300 and c.canceled == by["lookups"].items["starved_slots"] < 20
    assert [n for n in r.notes if "ran dry" in n] == [n for n in r.notes if "scenario 'lookups' ended there" in n] != []
    assert sorted(set(farm.worked["images"])) == sorted(f"i{k}" for k in range(900))


def test_a_drain_s_lanes_are_the_whole_farm_s():
    run = run_of(Config(name="work", target="sleep", params={"ms": 20}, load=Drain(Constant(9)), timeout=1.0,
                        feed=[{"id": n} for n in range(600)]))  # fmt: skip
    farm = SimFarm(run, expect=3)
    for name in ("a", "b", "c"):
        farm.agent(name)
    r = farm.finish()
    assert r.items["by_status"] == {"success": 600} and farm.in_flight["work"][1] == 9  # three lanes each
    assert sorted(a.counts.scheduled for a in r.agents) == pytest.approx([200, 200, 200], abs=20)


def test_an_open_scenario_runs_its_whole_profile_on_the_run_s_clock():
    run = run_of(Config(name="ramp", target="noop", load=Open(Stages([Stage(2, 0, 0), Stage(4, 0, 100)]))))
    farm = SimFarm(run, expect=1)
    farm.agent("a")
    r = farm.finish()
    assert fired(farm, "ramp") == list(range(200)) and rows(r)["ramp"].start_s == 2
