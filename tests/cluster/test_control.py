"""The coordinator's HTTP side: state, agents and Prometheus metrics, with a token beyond loopback."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pusher_farm.cluster.control.server import ControlServer, parse_address
from pusher_farm.cluster.spawn import run_local
from pusher_farm.core.config import Config
from pusher_farm.core.load import Open
from pusher_farm.core.run import Run
from pusher_farm.core.schedule import Constant
from pusher_farm.errors import InvalidOption
from pusher_farm.report.metrics import render_metrics

FARM = [sys.executable, "-m", "pusher_farm"]


def samples(text):
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_at_the_end_equal_the_report(tmp_path):
    spec = Run.of([Config(target="sleep", params={"ms": "1"}, load=Open(Constant(300, 2.0)))])
    control = ControlServer("127.0.0.1", 0, render=render_metrics)
    control.start()
    report = run_local(spec, 2, control=control)
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


def test_a_running_farm_serves_its_state_and_metrics_and_asks_for_the_token(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    p = subprocess.Popen(
        [*FARM, "run", "sleep", "--param", "ms=2", "--rps", "200", "-d", "5s", "-p", "2", "--http",
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
    with pytest.raises(InvalidOption, match="needs --http-token"):
        parse_address("0.0.0.0:8642", None)
    assert parse_address("0.0.0.0:8642", "t") == ("0.0.0.0", 8642)
    p = subprocess.run([*FARM, "run", "noop", "--rps", "10", "-d", "1s", "--http", "0.0.0.0:8642"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and "needs --http-token" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _patch(url, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body.encode(), method="PATCH", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_patch_changes_the_whole_farms_rate_at_one_instant_and_bad_bodies_change_nothing(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    out = tmp_path / "r.json"
    p = subprocess.Popen(
        [*FARM, "run", "noop", "--rps", "500", "-d", "6s", "-p", "2", "--http", f"127.0.0.1:{port}", "-q",
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
    assert c["planned"] == pytest.approx(500 * epoch["at_s"] + 1000 * (6 - epoch["at_s"]), abs=2)
    changed = int(epoch["at_s"]) + 1  # the first whole window after the change
    assert all(950 <= w["started"] <= 1050 for w in d["series"][changed:6]), d["series"]
    assert sum(a["counts"]["scheduled"] for a in d["agents"]) == c["scheduled"]
    assert all(abs(a["counts"]["planned"] - c["planned"] / 2) <= 1 for a in d["agents"])


def test_an_agent_serves_its_own_metrics(tmp_path):
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    port = _free_port()
    coord = subprocess.Popen(
        [*FARM, "coordinator", "noop", "--rps", "400", "-d", "4s", "--bind", endpoint, "-n", "2", "-q"],
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
