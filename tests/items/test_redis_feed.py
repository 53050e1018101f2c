"""A Redis list as a feed, against a real redis-server: taken reliably, done once, never lost."""

import json
import os
import signal
import subprocess
import time

import pytest
import redis
from farm_cli import usage_error
from helpers import FARM, drain_and_disturb, env, free_port, lines

import pusher_farm as pf
from pusher_farm.errors import InvalidOption
from pusher_farm.items.feeds import open_feed


def fill(url, n, name="jobs"):
    r = redis.Redis.from_url(url)
    r.rpush(name, *[json.dumps({"id": i, "body": {"n": i}}) for i in range(n)])
    return r


def test_in_process_drain_takes_every_item_off_both_lists(redis_url):
    r = fill(redis_url, 200)
    r.rpush("jobs", "not json")
    w = pf.hire("d", pf.inline(lambda ctx: ctx.item.id), pf.with_items(redis_url + "?list=jobs", parallel=8))
    report = w.work_sync()
    assert report.items["by_status"] == {"success": 200} and report.items["malformed"] == 1
    assert r.llen("jobs") == 0 and r.lrange("jobs:processing", 0, -1) == [b"not json"]  # left for a person


def test_items_an_earlier_run_held_go_back_first(redis_url):
    r = fill(redis_url, 5)
    r.lmove("jobs", "jobs:processing", "LEFT", "RIGHT")  # a coordinator died holding item 0
    feed = open_feed(redis_url + "?list=jobs")
    assert feed.recovered == 1 and [w.id for w in feed.items()] == ["0", "1", "2", "3", "4"]
    assert "1 items an earlier run had taken" in feed.notes()[0]


def test_redis_that_is_down_is_a_clear_error_before_any_load():
    port = free_port()
    with pytest.raises(InvalidOption, match=f"cannot reach Redis at redis://127.0.0.1:{port}/0"):
        open_feed(f"redis://127.0.0.1:{port}/0?list=jobs")
    assert "cannot reach Redis" in usage_error(
        "run", "noop", "--feed", f"redis://127.0.0.1:{port}/0", "--drain", "-p", "1"
    )


@pytest.mark.slow
def test_ten_thousand_items_three_agents_one_killed_none_lost(redis_url, tmp_path):
    """10,000 items on a Redis list, drained by 3 agents; one is killed with SIGKILL midway:
    every item is in the results exactly once, none is left on either list, and the report
    names the lost agent."""
    r = fill(redis_url, 10_000)
    status, err, d, got = drain_and_disturb(
        tmp_path, redis_url + "?list=jobs", 3, lambda agents: agents[1].send_signal(signal.SIGKILL), after=1000,
        extra=("--parallel", "8", "--agent-timeout", "1s"),
    )  # fmt: skip
    assert status == 1, err
    assert sorted(int(x["id"]) for x in got) == list(range(10_000))
    assert r.llen("jobs") == 0 and r.llen("jobs:processing") == 0
    assert [a["name"] for a in d["agents"] if a["lost"]] == ["a1"]
    assert d["items"]["reissued"] > 0 and d["items"]["by_status"] == {"success": 10_000}


@pytest.mark.slow
def test_redis_going_away_mid_run_ends_the_feed_and_loses_no_item(redis_url, tmp_path):
    """Redis stops answering mid-drain (SIGSTOP): the run ends with a clear note and exit 1;
    every item is in the results or still on a list once Redis is back."""
    r = fill(redis_url, 4000)
    pid = int(r.info("server")["process_id"])
    results, out = tmp_path / "results.jsonl", tmp_path / "report.json"
    coord = subprocess.Popen(
        [*FARM, "run", "item_targets:slow", "--feed", redis_url + "?list=jobs", "--drain", "--parallel", "4",
         "-p", "1", "--results", str(results), "--json", str(out), "-q"],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 300):
            time.sleep(0.05)
        os.kill(pid, signal.SIGSTOP)
        _, err = coord.communicate(timeout=120)
    finally:
        os.kill(pid, signal.SIGCONT)
    d = json.loads(out.read_text())
    assert coord.returncode == 1, err
    assert any("went away" in n for n in d["items"]["notes"]) and any("went away" in w for w in d["warnings"])
    done = {x["id"] for x in lines(results)}
    waiting = {str(json.loads(v)["id"]) for v in r.lrange("jobs", 0, -1) + r.lrange("jobs:processing", 0, -1)}
    assert done | waiting == {str(i) for i in range(4000)}  # none lost
    assert len(done) == len(lines(results))  # each result once
