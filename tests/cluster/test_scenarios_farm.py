"""Scenarios on a real farm (coordinator and agent processes over ZeroMQ on loopback), end to
end from the command line and Python: several workloads in one run, the closed model, a
scenario's own feed, results by name merged exactly across agents. (How a farm shares, moves
and accounts for scenarios, closely, is tested on the simulator: ``test_scenarios_sim``.)"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from farm_cli import farm as run
from farm_cli import usage_error

from pusher_farm import Scenario, farm
from pusher_farm.core.schedule import Constant, Stage, Stages
from pusher_farm.report.console import render_summary

MIX = """
duration = "3s"
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
start = "1s"
stages = "2s:0-50"
"""


@pytest.mark.slow
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
        "browse": Constant(300, 3).slot_count(),
        "search": Constant(50, 3).slot_count(),
        "checkout": Stages([Stage(1, 0, 0), Stage(2, 0, 50)]).slot_count(),
    }
    assert expected == {"browse": 900, "search": 150, "checkout": 50}
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
    assert rows["checkout"]["start_s"] == 1 and rows["checkout"]["load"] == "from 1s: 2s:0-50"
    page = html.read_text()
    assert "Scenarios: " in page and "By name: " in page and "checkout" in page


@pytest.mark.slow
def test_closed_model_users_on_two_agents():
    # 20 users, a 10 ms target, 2 s: a closed loop cannot exceed users / service time (2,000/s);
    # the lower bound is wide so a loaded machine passes
    p = run("run", "sleep", "--param", "ms=10", "--users", "20", "-d", "2s", "-p", "2", "-q", "--json", "-")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    calls = d["counts"]["succeeded"]
    assert 1_300 <= calls <= 20 * 2 / 0.010 + 20, calls
    (row,) = d["scenarios"]
    assert row["model"] == "closed" and row["latency_is_service_time"] and row["load"] == "20 users"
    assert d["counts"]["canceled"] == 0 and d["schedule_lag_ms"]["max"] == 0
    assert all(a["counts"]["scheduled"] > 0 for a in d["agents"])
    shown = run("run", "sleep", "--param", "ms=10", "--users", "4", "-d", "1s", "-p", "1").stdout
    assert "load        closed model (4 users), throughput" in shown


@pytest.mark.slow
def test_closed_model_iterations_from_the_command_line():
    p = run("run", "sleep", "--param", "ms=10", "--users", "20", "--iterations", "5", "--think", "5ms..10ms", "-p",
            "2", "-q", "--json", "-")  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["counts"]["succeeded"] == d["counts"]["scheduled"] == d["counts"]["planned"] == 100
    assert sorted(a["counts"]["scheduled"] for a in d["agents"]) == [50, 50]  # ten users each


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_feed_driven_http_scenario_reports_one_name_per_url_template(users_server, tmp_path):
    base, paths = users_server
    ids = tmp_path / "ids.jsonl"
    ids.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(400)))  # dry at 1.6 s of 2
    toml = tmp_path / "users.toml"
    # the feed in its scenario, in a mix with one without: a data-driven scenario of its own
    toml.write_text(
        f'duration = "2s"\n\n[[scenario]]\nname = "profiles"\ntarget = "http"\nfeed = "{ids}"\n'
        f'url = "{base}/users/{{id}}"\nrps = 250\n\n[[scenario]]\nname = "home"\ntarget = "http"\n'
        f'url = "{base}/"\nrps = 50\n'
    )
    p = run("run", "-c", str(toml), "-p", "2", "-q", "--json", "-")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert {f"/users/{i}" for i in range(400)} <= paths and "/" in paths
    names = {n["name"]: (n["calls"], n["succeeded"]) for n in d["names"]}
    assert names == {"GET /users/{id}": (400, 400), "GET /": (100, 100)}
    rows = {s["name"]: s for s in d["scenarios"]}
    assert rows["profiles"]["items"]["by_status"] == {"success": 400} and rows["home"]["items"] is None


BAD = [
    ('[[scenario]]\nname = "a"\ntarget = "noop"\nrps = 1\n[[scenario]]\nname = "a"\ntarget = "noop"\nrps = 2\n',
     "scenario 'a', key 'name'"),
    ('[[scenario]]\nname = "b"\ntarget = "noop"\nrps = 1\nusers = 2\n', "scenario 'b', key 'users'"),
    ('[[scenario]]\nname = "c"\ntarget = "noop"\nrps = 1\nstart = "30s"\n', "scenario 'c', key 'start'"),
    ('[[scenario]]\nname = "d"\ntarget = "noop"\nrps = 1\nthink = "90ms"\n', "scenario 'd', key 'think'"),
    ('[[scenario]]\nname = "e"\ntarget = "noop"\nrps = 1\ncolour = "red"\n', "scenario 'e', key 'colour'"),
    ('[[scenario]]\nname = "f"\ntarget = "nosuch.module:fn"\nrps = 1\n', "scenario 'f', key 'target'"),
    ('rps = 5\n[[scenario]]\nname = "g"\ntarget = "noop"\nrps = 1\n', "rps belongs in each [[scenario]]"),
    ('feed = "x.jsonl"\n[[scenario]]\nname = "g"\ntarget = "noop"\nrps = 1\n', "feed belongs in each [[scenario]]"),
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
    assert message in usage_error("run", "-c", str(path), "-p", "1", "-q", cwd=tmp_path)
