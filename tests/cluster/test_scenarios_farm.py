"""Scenarios on a real farm (coordinator and agent processes over ZeroMQ on loopback): several
workloads in one run, each sharded among the agents on its own slot numbers; the closed model;
results by name merged exactly across agents."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pusher_farm import Scenario, farm
from pusher_farm.core.schedule import Constant, Stage, Stages
from pusher_farm.report.console import render_summary

FARM = [sys.executable, "-m", "pusher_farm"]

MIX = """
duration = "20s"
window = "1s"

[[scenario]]
name = "browse"
target = "noop"
rps = 300

[[scenario]]
name = "search"
target = "noop"
rps = 50

[[scenario]]
name = "checkout"
target = "noop"
start = "5s"
stages = "15s:0-50"
"""


def run(*args, timeout=120):
    return subprocess.run([*FARM, *args], capture_output=True, text=True, timeout=timeout)


def test_three_scenarios_on_two_agents_count_exactly_and_interleave(tmp_path):
    path = tmp_path / "mix.toml"
    path.write_text(MIX)
    out = tmp_path / "r.json"
    html = tmp_path / "r.html"
    p = run("run", "-c", str(path), "-p", "2", "-q", "--json", str(out), "--html", str(html))
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    rows = {s["name"]: s for s in d["scenarios"]}
    expected = {
        "browse": Constant(300, 20).slot_count(),
        "search": Constant(50, 20).slot_count(),
        "checkout": Stages([Stage(5, 0, 0), Stage(15, 0, 50)]).slot_count(),
    }
    assert expected == {"browse": 6000, "search": 1000, "checkout": 375}
    for name, n in expected.items():
        c = rows[name]["counts"]
        assert c["planned"] == c["scheduled"] == n, (name, c)
        assert c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"]
        assert rows[name]["model"] == "open" and not rows[name]["latency_is_service_time"]
        # each scenario's slots alternate between the two equal agents: their counts differ by one at most
        per_agent = [a["scenarios"][name] for a in d["agents"]]
        assert sum(per_agent) == n and max(per_agent) - min(per_agent) <= 1, (name, per_agent)
    assert d["counts"]["planned"] == d["counts"]["scheduled"] == sum(expected.values())
    calls = {k: v - rows[k]["counts"]["canceled"] for k, v in expected.items()}
    assert {n["name"]: n["calls"] for n in d["names"]} == calls
    # checkout starts at 5 s: nothing of it in the first five windows of the series of its agents' load
    assert rows["checkout"]["start_s"] == 5 and rows["checkout"]["load"] == "from 5s: 15s:0-50"
    page = html.read_text()
    assert "Scenarios: " in page and "By name: " in page and "checkout" in page


def test_closed_model_users_on_two_agents():
    # 20 users, a 10 ms target, 10 s: a closed loop cannot exceed users / service time (2,000/s);
    # the lower bound is wide so a loaded machine passes
    p = run("run", "sleep", "--param", "ms=10", "--users", "20", "-d", "10s", "-p", "2", "-q", "--json", "-")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    calls = d["counts"]["succeeded"]
    assert 8_000 <= calls <= 20 * 10 / 0.010 + 20, calls
    (row,) = d["scenarios"]
    assert row["model"] == "closed" and row["latency_is_service_time"] and row["load"] == "20 users"
    assert d["counts"]["canceled"] == 0 and d["schedule_lag_ms"]["max"] == 0
    assert all(a["counts"]["scheduled"] > 0 for a in d["agents"])
    shown = run("run", "sleep", "--param", "ms=10", "--users", "4", "-d", "1s", "-p", "1").stdout
    assert "load        closed model (4 users), throughput" in shown


def test_closed_model_think_time_and_iterations():
    p = run("run", "sleep", "--param", "ms=10", "--users", "20", "--think", "90ms", "-d", "10s", "-p", "2", "-q",
            "--json", "-")  # fmt: skip
    assert p.returncode == 0, p.stderr
    calls = json.loads(p.stdout)["counts"]["succeeded"]
    assert 800 <= calls <= 20 * 10 / 0.100 + 20, calls  # about 200/s
    p = run("run", "sleep", "--param", "ms=10", "--users", "20", "--iterations", "5", "-p", "2", "-q", "--json", "-")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["counts"]["succeeded"] == d["counts"]["scheduled"] == d["counts"]["planned"] == 100
    assert sorted(a["counts"]["scheduled"] for a in d["agents"]) == [50, 50]  # ten users each


def test_scenarios_from_python_mix_open_and_closed():
    report = farm(
        None,
        3,
        [
            Scenario("browse", "noop", rps=100),
            Scenario("users", "sleep", users=4, iterations=5, params={"ms": 5}),
            Scenario("late", "noop", rps=20, start=1),
        ],
        agents=2,
    )
    rows = {s.name: s for s in report.scenarios}
    assert rows["browse"].counts.scheduled == 300 and rows["late"].counts.scheduled == 40
    assert rows["users"].counts.scheduled == 20 and rows["users"].model == "closed"
    assert report.counts.planned == report.counts.scheduled == 360
    assert sorted(a.scenarios["users"] for a in report.agents) == [10, 10]
    console = render_summary(report)
    assert "users" in console and "closed model (4 users, 5 iterations each): latency is service time" in console


class _Users(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    paths: set

    def do_GET(self):
        self.paths.add(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def users_server():
    paths = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("U", (_Users,), {"paths": paths}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", paths
    server.shutdown()
    server.server_close()


def test_a_feed_driven_http_scenario_reports_one_name_per_url_template(users_server, tmp_path):
    base, paths = users_server
    ids = tmp_path / "ids.jsonl"
    ids.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(500)))
    toml = tmp_path / "users.toml"
    toml.write_text(
        f'duration = "10s"\nfeed = "{ids}"\n\n[[scenario]]\nname = "profiles"\ntarget = "http"\n'
        f'url = "{base}/users/{{id}}"\nrps = 250\n'
    )
    p = run("run", "-c", str(toml), "-p", "2", "-q", "--json", "-")
    assert p.returncode == 2 and "feed" in p.stderr  # feeds belong to runs of one scenario (for now)
    p = run("run", "http", "--url", f"{base}/users/{{id}}", "--feed", str(ids), "--rps", "250", "-d", "10s",
            "-p", "2", "-q", "--json", "-")  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert len(paths) == 500
    assert [(n["name"], n["calls"], n["succeeded"]) for n in d["names"]] == [("GET /users/{id}", 500, 500)]


BAD = [
    ('[[scenario]]\nname = "a"\ntarget = "noop"\nrps = 1\n[[scenario]]\nname = "a"\ntarget = "noop"\nrps = 2\n',
     "scenario 'a', key 'name'"),
    ('[[scenario]]\nname = "b"\ntarget = "noop"\nrps = 1\nusers = 2\n', "scenario 'b', key 'users'"),
    ('[[scenario]]\nname = "c"\ntarget = "noop"\nrps = 1\nstart = "30s"\n', "scenario 'c', key 'start'"),
    ('[[scenario]]\nname = "d"\ntarget = "noop"\nrps = 1\nthink = "90ms"\n', "scenario 'd', key 'think'"),
    ('[[scenario]]\nname = "e"\ntarget = "noop"\nrps = 1\ncolour = "red"\n', "scenario 'e', key 'colour'"),
    ('[[scenario]]\nname = "f"\ntarget = "nosuch.module:fn"\nrps = 1\n', "scenario 'f', key 'target'"),
    ('rps = 5\n[[scenario]]\nname = "g"\ntarget = "noop"\nrps = 1\n', "rps belongs in each [[scenario]]"),
    ('[[scenario]]\nname = "h"\ntarget = "noop"\nrps = 1\nparams = "x"\n', "scenario 'h', key 'params'"),
    ('[[scenario]]\nname = "i"\ntarget = "noop"\nrps = 1\ntimeout = "soon"\n', "scenario 'i', key 'timeout'"),
    ('[[scenario]]\nname = "j"\ntarget = "noop"\nrps = 1\nfeed = "x.jsonl"\n',
     "scenario 'j', key 'feed': feed 'x.jsonl' does not exist"),
    ('[[scenario]]\nname = "k"\ntarget = "noop"\nrps = 1\ndrain = true\n', "scenario 'k', key 'drain': works on items"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_scenarios_are_refused_in_one_line_before_any_load(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text('duration = "10s"\n' + text)
    p = run("run", "-c", str(path), "-p", "1", "-q", timeout=30)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in p.stderr, p.stderr


LOSS = """
duration = "8s"

[[scenario]]
name = "open"
target = "noop"
rps = 300

[[scenario]]
name = "closed"
target = "sleep"
params = { ms = 10 }
users = 6
"""


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _coordinator(tmp_path, expect, *args):
    """`farm coordinator -c LOSS` waiting for ``expect`` agents, its JSON report path, and a way
    to start an agent process."""
    toml = tmp_path / "run.toml"
    toml.write_text(LOSS)
    out = tmp_path / "r.json"
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    cmd = [*FARM, "coordinator", "-c", str(toml), "--bind", endpoint, "--expect-agents", str(expect), *args, "-q",
           "--json", str(out)]  # fmt: skip
    coord = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def agent(name):
        cmd = [*FARM, "agent", "--connect", endpoint, "--name", name, "--once", "-q"]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return coord, out, agent


def _finish(coord, agents, out):
    _, err = coord.communicate(timeout=120)
    for a in agents:
        a.wait(30)
    return coord.returncode, err, json.loads(out.read_text())


def test_a_lost_agent_s_share_of_every_scenario_moves_to_the_others(tmp_path):
    import signal
    import time

    coord, out, agent = _coordinator(tmp_path, 3, "--agent-timeout", "1s")
    agents = [agent(f"a{i}") for i in range(3)]
    time.sleep(5)  # the run is under way (it starts once all three are there)
    agents[1].send_signal(signal.SIGKILL)
    status, err, d = _finish(coord, agents, out)
    assert status == 1, err  # an agent was lost: the run says so
    rows = {s["name"]: s for s in d["scenarios"]}
    c = rows["open"]["counts"]
    assert c["planned"] == c["scheduled"] + c["unfired"] == 2400
    assert d["counts"]["planned"] == d["counts"]["scheduled"] + d["counts"]["unfired"]
    assert sum(a["counts"]["planned"] for a in d["agents"]) == d["counts"]["planned"]
    for a in d["agents"]:
        ac = a["counts"]
        assert ac["planned"] == ac["scheduled"] + ac["unfired"]
        # a SIGKILLed agent's calls in flight never ended: only the survivors balance
        assert balanced(ac) if not a["lost"] else ac["succeeded"] + ac["failed"] + ac["canceled"] <= ac["scheduled"]
    lost = [a for a in d["agents"] if a["lost"]]
    assert [a["name"] for a in lost] == ["a1"]
    # the unfired slots are the lost agent's open ones (a closed model plans what it starts)
    assert c["unfired"] == lost[0]["counts"]["unfired"] and rows["closed"]["counts"]["unfired"] == 0
    assert d["epochs"] and "a1 lost" in d["epochs"][0]["reason"]
    # the survivors took the lost agent's slots after the epoch: each fired more than a third
    survivors = [a["scenarios"]["open"] for a in d["agents"] if not a["lost"]]
    assert all(n > 800 for n in survivors), survivors
    assert rows["closed"]["counts"]["scheduled"] > 0


def balanced(c):
    return c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"]


def test_a_late_agent_takes_a_share_of_every_scenario(tmp_path):
    import time

    coord, out, agent = _coordinator(tmp_path, 2)
    agents = [agent("a0"), agent("a1")]
    time.sleep(4)
    agents.append(agent("late"))
    status, err, d = _finish(coord, agents, out)
    assert status == 0, err
    rows = {s["name"]: s for s in d["scenarios"]}
    c = rows["open"]["counts"]
    assert c["planned"] == c["scheduled"] == 2400 and d["counts"]["unfired"] == 0
    late = next(a for a in d["agents"] if a["name"] == "late")
    if d["epochs"]:  # it joined before the end (a slow machine may start it too late to take a share)
        (epoch,) = d["epochs"]
        assert epoch["reason"] == "late joined"
        # from the epoch on, the open slots are dealt three ways
        assert abs(late["scenarios"]["open"] - (2400 - epoch["from_slot"]) / 3) <= 1
        assert late["scenarios"].get("closed", 0) > 0
    assert sum(a["scenarios"].get("open", 0) for a in d["agents"]) == 2400
