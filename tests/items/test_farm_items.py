"""Work items through the farm with real processes and real ZeroMQ sockets on 127.0.0.1 (the
end-to-end proof; the farm's handling of items is on the simulator, ``tests/cluster/test_items_sim.py``),
and the command line's refusals of bad item options."""

import json
import subprocess

import pytest
from farm_cli import usage_error
from helpers import FARM, env, farm_run, feed, lines

RETRY = "item_targets:retry_twice_every_third"


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_items_from_stdin(tmp_path):
    lines_in = "".join(json.dumps({"id": f"s{i}"}) + "\n" for i in range(30))
    out = tmp_path / "r.json"
    p = subprocess.run([*FARM, "run", "item_targets:echo", "--feed", "-", "--drain", "-p", "1", "--json", str(out),
                        "-q"], input=lines_in, capture_output=True, text=True, timeout=60, env=env())  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["items"]["by_status"] == {"success": 30}


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
    assert message in usage_error("run", *args, "-p", "1", cwd=tmp_path)


@pytest.mark.slow
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
