"""Work items through the farm with real processes and real ZeroMQ sockets on 127.0.0.1."""

import json
import signal
import subprocess

import pytest
from helpers import FARM, drain_and_disturb, env, farm_run, feed, lines

RETRY = "item_targets:retry_twice_every_third"


def test_a_drain_on_three_agents_does_every_item_once_with_exact_retries(tmp_path):
    results = tmp_path / "results.jsonl"
    p, d = farm_run(
        tmp_path, RETRY, "--feed", str(feed(tmp_path, 1000)), "--drain", "--parallel", "20", "-p", "3",
        "--max-retries", "3", "--results", str(results),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    got = lines(results)
    assert sorted(int(r["id"]) for r in got) == list(range(1000))  # each exactly once
    for r in got:
        retried = int(r["id"]) % 3 == 0
        assert r["status"] == "success" and r["attempts"] == (3 if retried else 1)
        assert r["retries"] == ["Retry: busy"] * 2 if retried else "retries" not in r
        assert r["result"]["done"] == r["id"] and r["agent"]
    items = d["items"]
    assert items["by_status"] == {"success": 1000} and items["attempts"] == {"1": 666, "3": 334}
    assert items["retries"] == 668 and d["errors"] == {"Retry: busy": 668} and items["unprocessed"] == 0
    assert items["retries_by_reason"] == {"Retry: busy": 668}
    assert len({r["result"]["pid"] for r in got}) == 3  # every agent worked
    c = d["counts"]
    assert c["planned"] == c["scheduled"] == 1668 and c["succeeded"] == 1000 and c["failed"] == 668
    assert d["profile"] == "drain, 20 parallel" and not d["stopped_early"]


def test_items_out_of_retries_go_to_the_dead_letter_file_and_failure_handlers(tmp_path):
    dead, failed = tmp_path / "dead.jsonl", tmp_path / "failed.txt"
    p, d = farm_run(
        tmp_path, RETRY, "--feed", str(feed(tmp_path, 300)), "--drain", "--parallel", "5", "-p", "2",
        "--max-retries", "1", "--dead-letter", str(dead), "--failure-handler", "item_targets:record_failure",
        environ=env(FARM_TEST_FAILED=str(failed)),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    letters = lines(dead)
    assert sorted(int(r["id"]) for r in letters) == list(range(0, 300, 3))
    for r in letters:
        assert r["error"] == "Retry: busy" and r["attempts"] == 2 and r["body"] == {"n": int(r["id"])}
    assert sorted(map(int, failed.read_text().split())) == list(range(0, 300, 3))
    assert d["items"]["by_status"] == {"success": 200, "failure": 100}
    assert d["items"]["callbacks"] == {"failure handler record_failure": 100, "dead-letter": 100}


def test_rate_mode_ends_when_the_feed_runs_dry_unless_it_cycles(tmp_path):
    """500 items at 100 calls/s for 10 s: the run ends after 5 s and says the feed ran dry;
    with --feed-cycle it runs the full 10 s."""
    items = str(feed(tmp_path, 500))
    p, d = farm_run(tmp_path, "item_targets:echo", "--feed", items, "--rps", "100", "-d", "10s", "-p", "2")
    assert p.returncode == 0, p.stderr
    c = d["counts"]
    assert c["succeeded"] == 500 and c["planned"] == c["scheduled"] == c["succeeded"] + c["canceled"]
    dry = [float(w.split("ran dry at ")[1].split(" s")[0]) for w in d["warnings"] if "feed ran dry at" in w]
    assert d["stopped_early"] and len(dry) == 1 and 4.9 <= dry[0] < 5.5  # the 500th slot is due at 4.99 s
    assert 4.9 <= d["duration_s"] < 6.0 and d["items"]["starved_slots"] == c["canceled"]
    p, d = farm_run(tmp_path, "item_targets:echo", "--feed", items, "--feed-cycle", "--rps", "100", "-d", "10s",
                    "-p", "2")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert d["counts"]["succeeded"] == d["counts"]["planned"] == 1000 and not d["stopped_early"]
    assert d["items"]["by_status"] == {"success": 1000} and not any("feed ran dry" in w for w in d["warnings"])


def test_items_from_stdin(tmp_path):
    lines_in = "".join(json.dumps({"id": f"s{i}"}) + "\n" for i in range(30))
    out = tmp_path / "r.json"
    p = subprocess.run([*FARM, "run", "item_targets:echo", "--feed", "-", "--drain", "-p", "1", "--json", str(out),
                        "-q"], input=lines_in, capture_output=True, text=True, timeout=60, env=env())  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["items"]["by_status"] == {"success": 30}


def test_an_agent_killed_mid_drain_loses_no_item(tmp_path):
    """Three agents drain 6,000 slow items; one is killed with SIGKILL: its items go to the
    others, and every item is in the results exactly once."""
    status, err, d, got = drain_and_disturb(
        tmp_path, str(feed(tmp_path, 6000)), 3, lambda agents: agents[0].send_signal(signal.SIGKILL), after=600,
        extra=("--parallel", "4", "--agent-timeout", "1s"),
    )  # fmt: skip
    assert status == 1, err  # an agent was lost
    assert sorted(int(r["id"]) for r in got) == list(range(6000))  # none lost, none twice
    lost = [a for a in d["agents"] if a["lost"]]
    assert [a["name"] for a in lost] == ["a0"]
    assert d["items"]["reissued"] > 0 and d["items"]["unprocessed"] == 0
    assert d["items"]["by_status"] == {"success": 6000}


@pytest.mark.parametrize(
    "args, message",
    [
        (["noop", "--rps", "10", "-d", "1s", "--drain"], "--drain: works on items: give it a feed (--feed FILE)"),
        (["noop", "--feed", "{feed}", "--drain", "--max-retries", "-1"], "max_retries must lie in 0..1,000"),
        (["noop", "--feed", "missing.jsonl", "--rps", "10", "-d", "1s"], "feed 'missing.jsonl' does not exist"),
        (["noop", "--feed", "items.txt", "--rps", "10", "-d", "1s"], "give a .jsonl"),
        (["noop", "--feed", "{feed}", "--rps", "10", "-d", "1s", "--parallel", "3"], "--parallel: is for drain mode"),
        (["noop", "--feed", "{feed}", "--drain", "--feed-cycle"], "--feed-cycle: a drain (lanes on items) processes"),
        (["noop", "--feed", "{feed}", "--drain", "--failure-handler", "nope:fn"], "cannot be imported here"),
        (["noop", "--feed", "{feed}", "--drain", "--parallel", "20", "--overtime", "5"], "parallel 20 is more than"),
        (["noop", "--feed", "redis://127.0.0.1:notaport/0", "--drain"], "cannot read the Redis address"),
    ],
)
def test_bad_item_options_get_one_line_and_exit_2(tmp_path, args, message):
    path = str(feed(tmp_path, 3))
    args = [a.replace("{feed}", path) for a in args]
    p = subprocess.run([*FARM, "run", *args, "-p", "1"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_malformed_lines_are_counted_with_their_numbers_and_the_rest_goes_on(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1}\nnot json\n{"id": 2}\n{"id": 3\n{"id": 4}\n')
    p, d = farm_run(tmp_path, "item_targets:echo", "--feed", str(path), "--drain", "-p", "1")
    assert p.returncode == 0, p.stderr
    assert d["items"]["by_status"] == {"success": 3} and d["items"]["malformed"] == 2
    assert [x["line"] for x in d["items"]["malformed_lines"]] == [2, 4]


def test_force_on_processes_drains_with_callbacks_on_this_side():
    """The Python API: force(...)(2) drains on two processes; the callbacks run here, each once."""
    from item_targets import retry_twice_every_third

    import pusher_farm as pf

    seen = {"ok": [], "retry": [], "failed": []}
    offer = pf.with_items(
        [{"id": i} for i in range(90)], parallel=4, max_retries=3,
        on_success=seen["ok"].append, on_retry=seen["retry"].append, on_failure=seen["failed"].append,
    )  # fmt: skip
    report = pf.force(None, None, retry_twice_every_third, offer)(2)
    assert report.items["by_status"] == {"success": 90} and len(report.agents) == 2
    assert sorted(int(w.id) for w in seen["ok"]) == list(range(90))
    assert len(seen["retry"]) == 60 and seen["failed"] == []


def test_a_drain_rate_cap_is_the_whole_farms(tmp_path):
    p, d = farm_run(tmp_path, "item_targets:echo", "--feed", str(feed(tmp_path, 200)), "--drain", "--rps", "100",
                    "-p", "2")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert d["items"]["by_status"] == {"success": 200} and d["duration_s"] >= 1.8  # 200 items at 100/s in all


def test_an_agent_stopped_by_its_user_mid_drain_hands_its_items_to_the_other(tmp_path):
    """SIGTERM to one of two agents mid-drain: it stops and leaves, the items it held go to the
    other agent, and the drain still does every item exactly once."""
    _status, err, d, got = drain_and_disturb(
        tmp_path, str(feed(tmp_path, 3000)), 2, lambda agents: agents[0].send_signal(signal.SIGTERM), after=300,
        extra=("--parallel", "4"),
    )  # fmt: skip
    assert sorted(int(x["id"]) for x in got) == list(range(3000)), err
    assert d["items"]["by_status"] == {"success": 3000} and d["items"]["unprocessed"] == 0
    assert d["items"]["reissued"] > 0  # what the stopped agent held went to the other
