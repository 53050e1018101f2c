"""Work items through a farm on the simulator (the product's coordinator, dealers, agents and
executors on a virtual clock): a rate-mode feed running dry ends the run (unless it cycles), a
drain's rate cap is the whole farm's, malformed lines are counted where they are, and an agent
killed or stopped by its user mid-drain hands its items on: every item exactly once.

The real-process proofs stay in ``tests/items/test_farm_items.py`` and ``test_redis_feed.py``."""

import json

import pytest
from sim import SimFarm

from pusher_farm.core.scenario import Scenario, build_run


def items(n):
    return [{"id": i, "body": {"n": i}} for i in range(n)]


def farm_of(scenario, agents, **run):
    farm = SimFarm(build_run([scenario], **run), expect=len(agents))
    for name in agents:
        farm.agent(name)
    return farm


def test_rate_mode_ends_when_the_feed_runs_dry_unless_it_cycles():
    """500 items at 100 calls/s for 10 s: the run ends after 5 s and says the feed ran dry;
    with feed_cycle it runs the full 10 s."""
    farm = farm_of(Scenario("echo", "noop", feed=items(500), rps=100), ["a", "b"], duration="10s")
    r = farm.finish()
    c = r.counts
    assert c.succeeded == 500 and c.planned == c.scheduled == c.succeeded + c.canceled
    dry = [float(n.split("ran dry at ")[1].split(" s")[0]) for n in r.notes if "feed ran dry at" in n]
    assert r.stopped_early and len(dry) == 1 and 4.9 <= dry[0] < 5.5  # the 500th slot is due at 4.99 s
    assert 4.9 <= r.duration_s < 6.0 and r.items["starved_slots"] == c.canceled
    # the first 500 slots called the target with an item each; the rest found none
    assert sorted(k for a in farm.agents.values() for k in a.runner.fired) == list(range(500))
    farm.close()

    farm = farm_of(Scenario("echo", "noop", feed=items(500), feed_cycle=True, rps=100), ["a", "b"], duration="10s")
    r = farm.finish()
    assert r.counts.succeeded == r.counts.planned == 1000 and not r.stopped_early
    assert r.items["by_status"] == {"success": 1000} and not any("feed ran dry" in n for n in r.notes)


def test_a_drain_rate_cap_is_the_whole_farms():
    farm = farm_of(Scenario("echo", "noop", feed=items(200), drain=True, rps=100), ["a", "b"])
    r = farm.finish()
    assert r.items["by_status"] == {"success": 200}
    assert 1.95 <= r.duration_s < 2.1  # 200 items at 100/s in all, not at 100/s on each agent
    assert all(a.counts.scheduled > 50 for a in r.agents)  # both took part


def test_malformed_lines_are_counted_with_their_numbers_and_the_rest_goes_on(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1}\nnot json\n{"id": 2}\n{"id": 3\n{"id": 4}\n')
    farm = farm_of(Scenario("echo", "noop", feed=str(path), drain=True), ["a"])
    r = farm.finish()
    assert r.items["by_status"] == {"success": 3} and r.items["malformed"] == 2
    assert [x["line"] for x in r.items["malformed_lines"]] == [2, 4]


@pytest.mark.parametrize("how", ["killed", "stopped by its user"])
def test_an_agent_gone_mid_drain_hands_its_items_on_and_every_item_is_done_once(tmp_path, how):
    """Three agents drain 3,000 items 20 ms each on 12 lanes; one is killed (kill -9) or stopped
    by its user midway: what it held goes to the others, every item is in the results once."""
    results = tmp_path / "results.jsonl"
    scenario = Scenario("work", "sleep", params={"ms": 20}, feed=items(3000), drain=True, parallel=12,
                        results=str(results))  # fmt: skip
    farm = farm_of(scenario, ["a0", "a1", "a2"])
    farm.at(1.0)
    assert 100 < len(farm.worked["work"]) < 1500
    gone = farm.agents["a0"]
    if how == "killed":
        gone.kill()
    else:
        gone.stop()
    r = farm.finish()
    farm.close()  # the results handler writes its last lines
    ids = [int(json.loads(line)["id"]) for line in results.read_text().splitlines()]
    assert sorted(ids) == list(range(3000))  # none lost, none twice
    assert r.items["by_status"] == {"success": 3000} and r.items["unprocessed"] == 0
    assert r.items["reissued"] > 0  # what it held went to the others
    by_name = {a.name: a for a in r.agents}
    if how == "killed":
        assert by_name["a0"].lost and r.status == 1  # an agent was lost
        assert not by_name["a1"].lost and not by_name["a2"].lost
    else:
        assert not any(a.lost for a in r.agents)
    # the others did the rest: items a0 never finished were worked again elsewhere
    assert set(map(int, farm.worked["work"])) == set(range(3000))
