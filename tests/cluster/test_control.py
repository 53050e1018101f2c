"""The coordinator's HTTP side: state, agents and Prometheus metrics, with a token beyond
loopback; PATCH /farm and /herd on real processes (their effect, closely, is on the simulator:
``test_runtime_control.py``)."""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from farm_cli import FARM, usage_error
from farm_cli import free_port as _free_port
from prometheus_client.parser import text_string_to_metric_families
from sim import SimFarm

import pusher_farm as pf
from pusher_farm.cluster.control.server import ControlServer, parse_address
from pusher_farm.core.config import Config
from pusher_farm.core.load import Open
from pusher_farm.core.run import Run
from pusher_farm.core.schedule import Constant
from pusher_farm.errors import InvalidOption
from pusher_farm.report.metrics import render_metrics


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_at_the_end_equal_the_report():
    spec = Run.of([Config(target="sleep", params={"ms": "1"}, load=Open(Constant(300, 2.0)), timeout=1.0)])
    control = ControlServer("127.0.0.1", 0, render=render_metrics)  # what it would serve (not started)
    farm = SimFarm(spec, expect=2, control=control)
    farm.agent("a"), farm.agent("b")
    report = farm.finish()
    got = samples(render_metrics(control.published).decode())
    c = report.counts
    assert got[("pusher_farm_calls_total", (("outcome", "succeeded"),))] == c.succeeded == 600
    assert got[("pusher_farm_calls_total", (("outcome", "failed"),))] == c.failed
    assert got[("pusher_farm_calls_total", (("outcome", "canceled"),))] == c.canceled
    assert got[("pusher_farm_latency_seconds_count", ())] == report.latency.total
    assert got[("pusher_farm_latency_seconds_sum", ())] == pytest.approx(report.latency.sum / 1e6)
    assert got[("pusher_farm_latency_seconds_bucket", (("le", "+Inf"),))] == report.latency.total
    assert (
        got[("pusher_farm_agents", (("state", "done"),))] + got.get(("pusher_farm_agents", (("state", "left"),)), 0)
        == 2
    )


def _get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.status, r.read().decode()


@pytest.mark.slow
def test_a_running_farm_serves_its_state_and_metrics_and_asks_for_the_token(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    p = subprocess.Popen(
        [*FARM, "run", "sleep", "--param", "ms=2", "--rps", "200", "-d", "3s", "-p", "2", "--http",
         f"127.0.0.1:{port}", "--http-token", "s3cret", "-q", "--json", str(tmp_path / "r.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline:
            try:
                _status, body = _get(base + "/farm", "s3cret")
                state = json.loads(body)
                if state.get("state") == "running" and state["totals"]["succeeded"] > 0:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        assert state is not None and state["state"] == "running" and len(state["agents"]) == 2
        assert state["requested_rps"] == 200 and state["overtime"] == 10000
        _, text = _get(base + "/metrics", "s3cret")
        got = samples(text)
        assert got[("pusher_farm_calls_total", (("outcome", "succeeded"),))] > 0
        assert got[("pusher_farm_requested_rps", ())] == 200
        _, agents = _get(base + "/agents", "s3cret")
        assert {a["name"] for a in json.loads(agents)} == {"local-0", "local-1"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(base + "/farm")
        assert refused.value.code == 401
    finally:
        p.wait(60)
    assert p.returncode == 0, p.stderr.read()


def test_beyond_loopback_the_http_side_needs_a_token():
    with pytest.raises(InvalidOption, match=r"beyond loopback\) needs a token"):
        parse_address("0.0.0.0:8642", None)
    assert parse_address("0.0.0.0:8642", "t") == ("0.0.0.0", 8642)
    line = usage_error("run", "noop", "--rps", "10", "-d", "1s", "--http", "0.0.0.0:8642")
    assert "needs a token" in line and "--http-token" in line


def _patch(url, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body.encode(), method="PATCH", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_patch_changes_the_whole_farms_rate_at_one_instant_and_bad_bodies_change_nothing(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    out = tmp_path / "r.json"
    p = subprocess.Popen(
        [*FARM, "run", "noop", "--rps", "500", "-d", "4s", "-p", "2", "--http", f"127.0.0.1:{port}", "-q",
         "--json", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                state = json.loads(_get(base + "/farm")[1])
                if state.get("state") == "running" and state.get("elapsed_s", 0) > 1.2:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        for body in ("", "{", "[1]", '{"rps": -5}', '{"rps": "fast"}', '{"rps": NaN}', '{"overtime": 1.5}',
                     '{"speed": 3}', '{"rps": true}'):  # fmt: skip
            status, answer = _patch(base + "/farm", body)
            assert status == 400 and answer["error"], body
        status, answer = _patch(base + "/farm", '{"rps": 1000}')
        assert status == 200, answer
        epoch = answer["epoch"]
    finally:
        p.wait(60)
    assert p.returncode == 0, p.stderr.read()
    d = json.loads(out.read_text())
    c = d["counts"]
    assert (
        c["planned"] == c["scheduled"] + c["unfired"] and c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"]
    )
    # the bad bodies changed nothing
    assert [e["reason"] for e in d["epochs"]] == ["scenario 'default' changed: rps 500 -> 1000"]
    assert d["epochs"][0]["from_slot"] == epoch["from_slot"]
    # the planned slots: 500/s until the change, 1000/s after it
    assert c["planned"] == pytest.approx(500 * epoch["at_s"] + 1000 * (4 - epoch["at_s"]), abs=2)
    changed = int(epoch["at_s"]) + 1  # the first whole window after the change
    assert d["series"][changed:4] and all(950 <= w["started"] <= 1050 for w in d["series"][changed:4]), d["series"]
    assert sum(a["counts"]["scheduled"] for a in d["agents"]) == c["scheduled"]
    assert all(abs(a["counts"]["planned"] - c["planned"] / 2) <= 1 for a in d["agents"])


@pytest.mark.slow
def test_an_agent_serves_its_own_metrics(tmp_path):
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    port = _free_port()
    coord = subprocess.Popen(
        [*FARM, "coordinator", "noop", "--rps", "400", "-d", "2s", "--bind", endpoint, "-n", "2", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    agents = [
        subprocess.Popen(
            [*FARM, "agent", "--connect", endpoint, "--once", "-q", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for extra in (["--metrics", f"127.0.0.1:{port}"], [])
    ]
    try:
        got = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                got = samples(_get(f"http://127.0.0.1:{port}/metrics")[1])
                if got.get(("pusher_farm_calls_total", (("outcome", "succeeded"),)), 0) > 0:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        assert got[("pusher_farm_calls_total", (("outcome", "succeeded"),))] > 0
        assert got[("pusher_farm_requested_rps", ())] == pytest.approx(200)  # its half of the farm's rate
    finally:
        coord.wait(60)
        for a in agents:
            a.wait(30)


HERD_TARGET = '''
import asyncio, os, time

_in_flight = 0


async def work(ctx):
    """20 ms per item; each start logged with this process's calls in flight (its own counter)."""
    global _in_flight
    _in_flight += 1
    with open(os.environ["HERD_LOG"], "a") as log:
        log.write(f"{time.time():.6f} {os.getpid()} {_in_flight}\\n")
    try:
        await asyncio.sleep(0.02)
    finally:
        _in_flight -= 1
'''

THREE = """
duration = "10s"

[[scenario]]
name = "browse"
target = "noop"
rps = 300

[[scenario]]
name = "users"
target = "sleep"
params = { ms = 10 }
users = 6

[[scenario]]
name = "work"
target = "herd:work"
feed = "items.jsonl"
drain = true
parallel = 10
results = "results.jsonl"
"""


@pytest.mark.slow
def test_patch_changes_each_scenario_of_a_real_farm_at_one_instant_and_a_killed_agent_loses_nothing(tmp_path):
    """Three scenarios on three agent processes: PATCH the open one's rate, the closed one's users
    and the drain's herd (10 -> 0 -> 20, Gofherd's /herd); kill an agent; every slot and item is
    accounted for, and no item starts while the herd is at 0 (the target's own log)."""
    (tmp_path / "herd.py").write_text(HERD_TARGET)
    (tmp_path / "run.toml").write_text(THREE)
    (tmp_path / "items.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(4500)))
    log, out = tmp_path / "herd.log", tmp_path / "r.json"
    port, endpoint = _free_port(), f"tcp://127.0.0.1:{_free_port()}"
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HERD_LOG": str(log)}
    coord = subprocess.Popen(
        [*FARM, "coordinator", "-c", "run.toml", "--bind", endpoint, "-n", "3", "--agent-timeout", "1s", "--http",
         f"127.0.0.1:{port}", "-q", "--json", str(out)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    agents = [
        subprocess.Popen([*FARM, "agent", "--connect", endpoint, "--name", f"a{i}", "--once", "-q"], cwd=tmp_path,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(3)
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                state = json.loads(_get(base + "/farm")[1])
                if state.get("state") == "running" and state.get("elapsed_s", 0) > 1.5:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        assert {s["name"]: s["model"] for s in state["scenarios"]} == {"browse": "open", "users": "closed",
                                                                        "work": "drain"}  # fmt: skip
        assert _patch(base + "/farm", '{"rps": 600}')[0] == 409  # a run of three: name the scenario
        assert _patch(base + "/farm", '{"scenario": "browse", "users": 3}')[0] == 409  # an open model has no users
        status, rate = _patch(base + "/farm", '{"scenario": "browse", "rps": 600}')
        assert status == 200, rate
        assert _patch(base + "/farm", '{"scenario": "users", "users": 12}')[0] == 200
        assert _get(base + "/herd") == (200, json.dumps({"num": 10, "msg": "success"}))
        paused_at = time.time()
        status, paused = _patch(base + "/herd", '{"num": 0}')
        assert status == 200 and paused["num"] == 0, paused
        time.sleep(2.5)
        assert json.loads(_get(base + "/herd")[1])["num"] == 0
        resumed_at = time.time()
        assert _patch(base + "/herd", '{"num": 20}')[0] == 200
        time.sleep(1.5)
        agents[1].send_signal(signal.SIGKILL)
        killed_at = time.time()
    finally:
        coord.wait(90)
        for a in agents:
            a.wait(30)
    assert coord.returncode == 1, coord.stderr.read()  # an agent was lost: the run says so
    d = json.loads(out.read_text())
    rows = {s["name"]: s for s in d["scenarios"]}
    for row in rows.values():
        c = row["counts"]
        assert c["planned"] == c["scheduled"] + c["unfired"], row
    assert sum(a["counts"]["planned"] for a in d["agents"]) == d["counts"]["planned"]
    assert [e["reason"] for e in d["epochs"]] == [
        "scenario 'browse' changed: rps 300 -> 600", "scenario 'users' changed: users 6 -> 12",
        "scenario 'work' changed: parallel 10 -> 0", "scenario 'work' changed: parallel 0 -> 20", "a1 lost",
    ]  # fmt: skip
    at = rate["epoch"]["at_s"]
    assert rows["browse"]["counts"]["planned"] == pytest.approx(300 * at + 600 * (10 - at), abs=2)
    # every item once in the results, whoever did it (the killed agent's went to the others)
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(int(r["id"]) for r in results) == list(range(4500)) and {r["status"] for r in results} == {"success"}
    assert d["items"]["by_status"] == {"success": 4500} and rows["work"]["items"]["by_status"] == {"success": 4500}
    # the herd, by the target's own log: no item started while it was at 0, then 20 at once
    starts = [(float(t), int(pid), int(n)) for t, pid, n in (line.split() for line in log.read_text().splitlines())]
    assert not [s for s in starts if paused_at + 1.0 < s[0] < resumed_at], "an item started while the herd was 0"
    grown = {}
    for t, pid, n in starts:
        if resumed_at + 1.0 < t < killed_at:
            grown[pid] = max(grown.get(pid, 0), n)
    assert sorted(grown.values()) == [6, 7, 7]  # 20 lanes dealt among three agents


@pytest.mark.slow
def test_the_python_api_serves_the_same_control(tmp_path):
    """farm(..., control="HOST:PORT"): the HTTP side of a run from Python, with the same rules."""
    with pytest.raises(InvalidOption, match="needs a token"):
        pf.farm(None, 1, [pf.Scenario("a", "noop", rps=10)], agents=1, control="0.0.0.0:0")
    port = _free_port()
    box = {}

    def run():
        box["r"] = pf.farm(None, 2, [pf.Scenario("a", "noop", rps=100)], agents=1, control=f"127.0.0.1:{port}")

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    status, answer = 0, None
    while time.monotonic() < deadline:
        try:
            state = json.loads(_get(f"http://127.0.0.1:{port}/farm")[1])
            if state.get("state") == "running" and state.get("elapsed_s", 0) > 0.5:
                status, answer = _patch(f"http://127.0.0.1:{port}/farm", '{"rps": 300}')
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    runner.join(60)
    assert status == 200, answer
    r = box["r"]
    assert [e.reason for e in r.epochs] == ["scenario 'a' changed: rps 100 -> 300"]
    at = answer["epoch"]["at_s"]
    assert r.counts.planned == r.counts.scheduled == pytest.approx(100 * at + 300 * (2 - at), abs=2)
