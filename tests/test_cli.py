"""The farm command: every bad input is one line and exit 2 (checked in this process, where the
command refuses it before any load), and real runs from the command line (marked slow)."""

import json
import signal
import subprocess
import time

import pytest
from farm_cli import FARM, env, farm, usage_error

HTTP_RUN = ["run", "http", "--url", "http://127.0.0.1:1/", "--rps", "1", "-d", "1s"]

BAD = [
    (["run", "noop", "--rps", "0", "-d", "1s"], "invalid rps"),
    (["run", "noop", "--rps", "-5", "-d", "1s"], "invalid rps"),
    (["run", "noop", "--rps", "nan", "-d", "1s"], "invalid rps"),
    (["run", "noop", "--rps", "abc", "-d", "1s"], "not a valid float"),
    (["run", "noop", "--rps", "10", "-d", "soon"], "cannot read duration"),
    (["run", "noop", "--rps", "10", "-d", "-3s"], "cannot read duration"),
    (["run", "noop", "--rps", "10"], "--rps: give a duration"),
    (["run", "noop", "-d", "1s"], "give a load: rps with a duration, stages, users or a drain"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--overtime", "-1"], "invalid overtime"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--overtime", "x"], "invalid overtime: must be a whole number"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--overtime", "2000000"], "at most 1,000,000"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--timeout", "-1s"], "cannot read timeout '-1s'"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--timeout", "0"], "timeout must be positive (e.g. 30s), or none"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--window", "0"], "window must be between 10ms and 3600s"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--window", "1ms"], "window must be between 10ms and 3600s"),
    (["run", "nosuch.module:fn", "--rps", "10", "-d", "1s"], "cannot import module 'nosuch.module'"),
    (["run", "math:nothing", "--rps", "10", "-d", "1s"], "has no attribute"),
    (["run", "math:pi", "--rps", "10", "-d", "1s"], "not callable"),
    (["run", "bogus", "--rps", "10", "-d", "1s"], "neither a target name (http, noop, sleep"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--param", "x=1"], "has no parameter 'x'"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--param", "novalue"], "key=value"),
    (["run", "sleep", "--rps", "10", "-d", "1s", "--param", "ms=abc"], "parameter ms='abc'"),
    (["run", "http", "--rps", "10", "-d", "1s"], "needs the parameter 'url'"),
    (["run", "http", "--url", "ftp://x/", "--rps", "10", "-d", "1s"], "not an http"),
    (["run", "http", "--url", "http://127.0.0.1:1/", "--method", "FETCH", "--rps", "1", "-d", "1s"], "unknown method"),
    (["run", "http", "--url", "http://127.0.0.1:1/", "--header", "nocolon", "--rps", "1", "-d", "1s"], "Name: value"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--batch", "2s"], "batch must be between 0 and 100ms"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--batch", "soon"], "cannot read batch 'soon'"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--spin", "5s"], "spin must be between 0 and 1s"),
    ([*HTTP_RUN, "--engine", "curl"], "is not one of"),
    ([*HTTP_RUN, "--param", "engine=curl"], "unknown engine"),
    ([*HTTP_RUN, "--param", "connections=-1"], "must be >= 0"),
    ([*HTTP_RUN, "--param", "connect_timeout=0"], "positive"),
    ([*HTTP_RUN, "--param", "verify=maybe"], "true or false"),
    ([*HTTP_RUN, "--param", "connecting=0"], "from 1 to 100000"),
    ([*HTTP_RUN, "--warm", "-1"], "from 0 to 100000"),
    ([*HTTP_RUN, "--warm", "4", "--engine", "aiohttp"], "warm needs the lean engine"),
    ([*HTTP_RUN, "--expect-status", "abc"], "cannot read status"),
    ([*HTTP_RUN, "--expect-status", "700"], "within 100-599"),
    ([*HTTP_RUN, "--expect-header", "nocolon"], "Name: value"),
    ([*HTTP_RUN, "--param", "phases=sometimes"], "true or false"),
    (["run", "noop", "--stages", "10s"], "cannot read stage"),
    (["run", "noop", "--stages", "1s:0"], "nothing would ever be sent"),
    (["run", "noop", "--rps", "10", "--stages", "1s:10"], "give either rps (with a duration) or stages"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--json", "/nonexistent/dir/r.json"], "does not exist"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--bogus"], "no such option"),
    (["demo", "--duration", "never"], "cannot read duration"),
    (["run", "noop", "--rps", "10", "-d", "1s", "-p", "0"], "--processes"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--on-agent-loss", "maybe"], "is not one of"),
    (["run", "noop", "--rps", "10", "-d", "1s", "--agent-timeout", "soon"], "cannot read duration"),
    (["coordinator", "noop", "--rps", "10", "-d", "1s"], "--expect-agents"),
    (["coordinator", "noop", "--rps", "10", "-d", "1s", "-n", "0"], "at least 1"),
    (["coordinator", "noop", "--rps", "10", "-d", "1s", "-n", "1", "--bind", "tcp://0.0.0.0:5598"], "--keys"),
    (["coordinator", "noop", "--rps", "10", "-d", "1s", "-n", "1", "--bind", "udp://x"], "endpoint like"),
    (["coordinator", "noop", "--rps", "10", "-d", "1s", "-n", "1", "--keys", "/nonexistent"], "farm keys generate"),
    (["agent", "--connect", "localhost:5555"], "endpoint like"),
    (["agent", "--connect", "tcp://127.0.0.1:5555", "--capacity", "-1"], "--capacity"),
    (["agent", "--connect", "tcp://127.0.0.1:5555", "--capacity", "inf"], "--capacity"),
    (["agent", "--connect", "tcp://127.0.0.1:5555", "--capacity", "nan"], "--capacity"),
    (["agent", "--connect", "tcp://127.0.0.1:5555", "--capacity", "2e6"], "at most 1e+06"),
    (["agent", "--connect", "tcp://127.0.0.1:5555", "--keys", "/nonexistent"], "farm keys generate"),
    (["agent", "--connect", "tcp://127.0.0.1:5555", "--gossip", "nosuch:thing"], "--gossip"),
    (["keys", "generate", "/tmp/x", "--agents", "0"], "at least 1"),
    (["nosuchcommand"], "no such command"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2(args, message):
    assert message.lower() in usage_error(*args).lower()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "noop", "--rps", "0", "-d", "1s"], "invalid rps"),  # the library's rule
        (["run", "nosuch.module:fn", "--rps", "10", "-d", "1s"], "cannot import module 'nosuch.module'"),
        (["run", "noop", "--rps", "10", "-d", "1s", "--bogus"], "no such option"),  # click's
    ],
    ids=["rule", "target", "option"],
)
def test_a_real_process_refuses_bad_input_in_one_line_with_exit_2(args, message):
    p = farm(*args)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message.lower() in lines[0].lower(), p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""


@pytest.mark.slow
def test_run_noop_writes_the_json_contract(tmp_path):
    out = tmp_path / "r.json"
    p = farm("run", "noop", "--rps", "300", "--duration", "1s", "--window", "500ms", "--json", str(out), "-q")
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["schema"] == "pusher-farm/report/v1"
    assert d["target"] == "noop"
    assert d["requested_rps"] == 300 and d["duration_s"] == 1
    assert d["counts"]["scheduled"] == 300
    c = d["counts"]
    assert c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"]
    assert d["achieved_rps"] == pytest.approx(300, rel=0.01)
    # Successes over the run from its first slot: start-up (processes, imports) is not in it.
    assert d["throughput_rps"] == pytest.approx(300, rel=0.1)
    assert c["planned"] == c["scheduled"] and c["unfired"] == 0
    for key in ("latency_ms", "service_time_ms", "schedule_lag_ms"):
        assert set(d[key]) >= {"p50", "p90", "p99", "p99.9", "max", "mean"}
    assert len(d["series"]) >= 2
    assert set(d["series"][0]) >= {"t", "rps", "succeeded", "failed", "canceled", "p50_ms", "p99_ms"}
    assert d["errors"] == {}
    assert "scheduled 300" in p.stdout


@pytest.mark.slow
def test_run_user_target_with_stages(tmp_path):
    (tmp_path / "mytargets.py").write_text("def hit(ctx):\n    if ctx.seq % 10 == 0:\n        raise OSError('x')\n")
    args = ["run", "mytargets:hit", "--stages", "1s:0-100,1s:100", "--json", "-", "-q"]
    p = farm(*args, cwd=tmp_path, env=env(tmp_path))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert abs(d["counts"]["scheduled"] - 150) <= 1
    assert d["errors"]["OSError"] == d["counts"]["failed"] == pytest.approx(15, abs=1)


@pytest.mark.slow
def test_demo_runs_out_of_the_box(tmp_path):
    out = tmp_path / "demo.json"
    p = farm("demo", "--duration", "1s", "--json", str(out), timeout=60)
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["counts"]["scheduled"] == 200
    assert d["counts"]["succeeded"] > 175
    assert set(d["errors"]) <= {"HTTP 503"}
    assert "latency" in p.stdout


@pytest.mark.slow
def test_sigint_stops_every_agent_at_one_slot_and_still_reports(tmp_path):
    marker = tmp_path / "started"
    (tmp_path / "tick.py").write_text(f"def tick(ctx):\n    open({str(marker)!r}, 'a').close()\n")
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [*FARM, "run", "tick:tick", "--rps", "100", "-d", "60s", "-p", "2", "--json", str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env(tmp_path),
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    d = json.loads(out.read_text())
    assert d["stopped_early"] is True
    c = d["counts"]
    assert 10 <= c["scheduled"] < 6000
    assert c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"]
    # Both agents stopped at the same slot: nothing planned was left unfired.
    assert c["planned"] == c["scheduled"] and c["unfired"] == 0


@pytest.mark.slow
def test_a_target_stuck_past_its_timeout_does_not_keep_the_process_alive(tmp_path):
    (tmp_path / "stuck.py").write_text("import time\n\ndef hang(ctx):\n    time.sleep(600)\n")
    started = time.monotonic()
    p = farm("run", "stuck:hang", "--rps", "4", "-d", "1s", "--timeout", "300ms", "--json", "-", "-q", cwd=tmp_path,
             env=env(tmp_path))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - started < 20
    d = json.loads(p.stdout)
    assert d["errors"] == {"Timeout": 4} and d["counts"]["failed"] == 4
