"""The farm with real processes and real ZeroMQ sockets on 127.0.0.1 (and hosts in network
namespaces): the end-to-end proof of what the simulator checks closely (``test_farm.py``)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

import pusher_farm as pf
from pusher_farm.cluster.protocol.messages import PROTOCOL_VERSION
from pusher_farm.core.histogram_codec import from_hdr
from pusher_farm.core.stats import Histogram

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
FARM = [sys.executable, "-m", "pusher_farm"]


def env(**extra):
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(HERE), e.get("PYTHONPATH", "")])
    e.update(extra)
    return e


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def balanced(c):
    return c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"]


def coordinator(*args: str, out=None, environ=None, quiet=False, lab=None) -> subprocess.Popen:
    """`farm coordinator ARGS -q` (with --json OUT), on this host or in a lab namespace."""
    cmd = [*FARM, "coordinator", *args, "-q", *(["--json", str(out)] if out is not None else [])]
    stream = subprocess.DEVNULL if quiet else subprocess.PIPE
    kw = {"env": environ or env(), "stdout": stream, "stderr": stream, "text": True}
    if lab is not None:
        return lab[0].popen(lab[1], cmd, **kw)
    return subprocess.Popen(cmd, **kw)


def agent(endpoint, name, *extra, environ=None):
    return subprocess.Popen(
        [*FARM, "agent", "--connect", endpoint, "--name", name, "--once", "-q", *extra],
        env=environ or env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_farm_run_two_processes_holds_the_rate(tmp_path):
    out = tmp_path / "r.json"
    p = subprocess.run(
        [*FARM, "run", "noop", "--rps", "2000", "--duration", "2s", "-p", "2", "--json", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["achieved_rps"] == pytest.approx(2000, rel=0.01)
    assert d["counts"]["scheduled"] == 4000 and balanced(d["counts"])
    assert len(d["agents"]) == 2
    for a in d["agents"]:
        assert balanced(a["counts"]) and a["counts"]["scheduled"] == 2000
        assert a["share"] == 0.5 and a["lost"] is False and abs(a["clock_offset_ms"]) < 50
    assert sum(a["counts"]["succeeded"] for a in d["agents"]) == d["counts"]["succeeded"]


def test_coordinator_and_two_agent_processes(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "r.json"
    coord = coordinator(
        "noop", "--rps", "1000", "--duration", "1s", "--bind", endpoint, "--expect-agents", "2", out=str(out)
    )
    agents = [agent(endpoint, f"a{i}") for i in range(2)]
    _, err = coord.communicate(timeout=120)
    assert coord.returncode == 0, err
    for a in agents:
        a.wait(30)
    d = json.loads(out.read_text())
    assert d["counts"]["scheduled"] == 1000 and balanced(d["counts"])
    assert d["achieved_rps"] == pytest.approx(1000, rel=0.01)
    assert sorted(a["name"] for a in d["agents"]) == ["a0", "a1"]
    assert [a["counts"]["scheduled"] for a in d["agents"]] == [500, 500]


def test_three_agents_interleave_evenly_and_histograms_merge_exactly(tmp_path):
    record = tmp_path / "rec"
    record.mkdir()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "r.json"
    coord = coordinator(
        "recorder:hit", "--rps", "60", "--duration", "1.5s", "--bind", endpoint, "--expect-agents", "3", out=str(out)
    )
    agents = [
        agent(endpoint, f"a{i}", "--gossip", "recorder:Recorder", environ=env(PUSHER_TEST_RECORD=str(record)))
        for i in range(3)
    ]
    _, err = coord.communicate(timeout=120)
    assert coord.returncode == 0, err
    for a in agents:
        a.wait(30)
    d = json.loads(out.read_text())
    assert d["counts"]["scheduled"] == 90
    from recorder import read

    rows = read(record)
    assert len(rows) == 3
    offsets = {a["pid"]: a["clock_offset_ms"] / 1000 for a in d["agents"]}
    befores = []
    latencies = []
    for pid, events in rows.items():
        for when, seq, intended, started, ended, _ in events:
            if when == "before-target":
                befores.append((seq, intended - offsets[pid], pid))
            elif when == "after-target":
                latencies.append(round((ended - min(intended, started)) * 1e6))
    befores.sort()
    # Every global slot fired exactly once, by agents in turn, on one even grid.
    assert [s for s, _, _ in befores] == list(range(90))
    assert [pid for _, _, pid in befores[:6]] == [pid for _, _, pid in befores[3:9]]
    assert len({pid for _, _, pid in befores[:3]}) == 3
    gaps = np.diff([t for _, t, _ in befores])
    assert np.allclose(gaps, 1 / 60, atol=0.002)
    # The merged histogram equals one histogram of all the values the agents recorded.
    one = Histogram()
    one.record_many(np.array(latencies))
    merged = from_hdr(HdrHistogram.decode(d["histograms"]["latency"]))
    assert np.array_equal(merged.counts, one.counts)
    assert d["latency_ms"]["p99"] == pytest.approx(min(one.percentile(99), one.max) / 1000)


def test_target_that_cannot_be_imported_on_an_agent_fails_the_run_naming_it(tmp_path):
    mod = tmp_path / "onlyhere"
    mod.mkdir()
    (mod / "agentonly.py").write_text("def fn(ctx):\n    return 1\n")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    coord = coordinator("agentonly:fn", "--rps", "10", "--duration", "2s", "--bind", endpoint, "--expect-agents", "2")
    good = agent(endpoint, "has-it", environ=env(PYTHONPATH=str(mod)))
    bad = agent(endpoint, "lacks-it")
    out, err = coord.communicate(timeout=120)
    assert coord.returncode == 2, err
    assert "agent 'lacks-it'" in out + err and "cannot import module 'agentonly'" in out + err
    for a in (good, bad):
        a.wait(30)


def test_a_silent_coordinator_stops_the_agents_load(tmp_path):
    record = tmp_path / "rec"
    record.mkdir()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    coord = coordinator("recorder:hit", "--rps", "100", "--duration", "60s", "--bind", endpoint, "--expect-agents", "1",
                        "--agent-timeout", "1s", quiet=True)  # fmt: skip
    a = agent(endpoint, "orphan", "--gossip", "recorder:Recorder", environ=env(PUSHER_TEST_RECORD=str(record)))
    from recorder import read

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(len(r) > 50 for r in read(record).values()):
        time.sleep(0.1)
    coord.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    coord.wait(10)
    # Past its lease the agent starts nothing more. (It would keep offering its windows for a
    # while, then leave: the simulator checks that; here its user stops it after 3 s.)
    time.sleep(3.0)
    a.send_signal(signal.SIGINT)
    a.wait(15)
    events = next(iter(read(record).values()))
    last_start = max(e[3] for e in events if e[0] == "before-target")
    # time.monotonic is one clock for every process on this host; the lease is the agent
    # timeout (1 s) and half the start lead after the last word from the coordinator
    assert last_start - killed < 1.25 + 0.5


def test_python_force_runs_on_processes(tmp_path):
    from recorder import hit

    r = pf.force(200, 1, hit)(2)
    assert r.counts.scheduled == 400 and r.counts.succeeded == 400
    assert len(r.agents) == 2 and {a.pid for a in r.agents} != {os.getpid()}
    assert [w.counts.scheduled for w in r.workers] == [200, 200]


def test_python_farm_raises_an_agent_s_error_as_itself(monkeypatch):
    from pusher_farm.targets import resolve

    monkeypatch.setenv("PUSHER_TEST_HOME", str(os.getpid()))
    target = resolve("recorder:PICKY")  # builds here; the agents' processes refuse it
    workers = [pf.hire(f"w{i}", target) for i in range(2)]
    with pytest.raises(pf.InvalidOption, match="picky builds only in process") as info:
        pf.farm(10, 2, workers)
    assert "agent 'local-" in str(info.value)
    assert not any(w.busy for w in workers)


def test_python_force_stops_at_the_first_agent_that_dies():
    from recorder import crash

    started = time.monotonic()
    with pytest.raises(pf.FarmError) as info:
        pf.force(20, 30, crash)(2)  # the agent that fires slot 40 (at 1 s) dies
    # the one that died, named, silent past the agent timeout (3 s): the run aborted at once
    assert re.fullmatch(r"farm error: agent 'local-[01]' \(host .+, pid \d+\) lost \(silent for 3\.\ds\): run aborted",
                        str(info.value)), str(info.value)  # fmt: skip
    assert time.monotonic() - started < 12  # not the 30 s the run would have lasted


def test_python_farm_on_window_sees_the_merged_farm():
    from recorder import hit

    seen = []
    r = pf.farm(50, 2, [pf.hire("a", hit), pf.hire("b", hit)], on_window=seen.append)
    assert r.counts.succeeded == 200
    assert sum(w.succeeded for w in seen) == 200
    assert len({w.index for w in seen}) == len(seen)


def test_an_agent_serves_several_runs_in_a_row(tmp_path):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*FARM, "agent", "--connect", endpoint, "--name", "steady", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for i in range(2):
            out = tmp_path / f"r{i}.json"
            p = subprocess.run(
                [
                    *FARM,
                    "coordinator",
                    "noop",
                    "--rps",
                    "100",
                    "--duration",
                    "1s",
                    "--bind",
                    endpoint,
                    "--expect-agents",
                    "1",
                    "--wait",
                    "30s",
                    "--json",
                    str(out),
                    "-q",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert p.returncode == 0, p.stderr
            d = json.loads(out.read_text())
            assert d["counts"]["succeeded"] == 100 and d["agents"][0]["name"] == "steady"
        assert server.poll() is None  # still serving
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(15)
    assert server.returncode == 0


def test_ten_thousand_bad_frames_during_a_run_change_nothing(tmp_path):
    import random

    import msgpack
    import zmq

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "r.json"
    coord = coordinator(
        "noop", "--rps", "500", "--duration", "4s", "--bind", endpoint, "--expect-agents", "2", out=str(out)
    )
    agents = [agent(endpoint, f"a{i}") for i in range(2)]
    time.sleep(2.5)
    rng = random.Random(3)
    ctx = zmq.Context()
    junk = []
    for i in range(10):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IDENTITY, f"stranger-{i}".encode())
        s.connect(endpoint)
        junk.append(s)
    frames = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))),
        lambda: msgpack.packb({"v": 1, "t": rng.choice(["window", "done", "hello", "ack", "zzz"]), "run": "x"}),
        lambda: msgpack.packb({"v": 7, "t": "hello"}),
        lambda: msgpack.packb({"v": 1, "t": "window", "run": "x", "seq": 1, "w": {"i": "bad"}}),
        lambda: msgpack.packb([1, 2, 3]),
    ]
    for n in range(10_000):
        junk[n % 10].send(rng.choice(frames)())
    junk[0].send(b"\x00" * (5 * 1024 * 1024))  # over the size limit: ZeroMQ drops that peer
    _, err = coord.communicate(timeout=120)
    for s in junk:
        s.close()
    ctx.term()
    for a in agents:
        a.wait(30)
    assert coord.returncode == 0, err
    d = json.loads(out.read_text())
    assert d["counts"]["scheduled"] == 2000 and d["counts"]["succeeded"] == 2000
    assert sorted(a["counts"]["scheduled"] for a in d["agents"]) == [1000, 1000]
    assert any("bad frames" in w for w in d["warnings"])


def test_with_keys_only_authorised_agents_join(tmp_path):
    import shutil

    keys, other = tmp_path / "keys", tmp_path / "other"
    for d in (keys, other):
        p = subprocess.run([*FARM, "keys", "generate", str(d)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
    # A stranger with its own key, who knows the coordinator's public key but is not authorised.
    shutil.copy(keys / "coordinator.key", other / "coordinator.key")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "r.json"
    coord = coordinator(
        "noop",
        "--rps",
        "100",
        "--duration",
        "2s",
        "--bind",
        endpoint,
        "--expect-agents",
        "1",
        "--keys",
        str(keys),
        out=str(out),
    )
    stranger = agent(endpoint, "stranger", "--keys", str(other))
    plain = agent(endpoint, "plain")
    time.sleep(1.5)
    trusted = agent(endpoint, "trusted", "--keys", str(keys))
    _, err = coord.communicate(timeout=60)
    assert coord.returncode == 0, err
    d = json.loads(out.read_text())
    assert [a["name"] for a in d["agents"]] == ["trusted"]
    assert d["counts"]["succeeded"] == 200
    trusted.wait(30)
    for a in (stranger, plain):
        assert a.poll() is None  # never let in, still knocking
        a.send_signal(signal.SIGINT)
        a.wait(15)
    assert "authorized" in stranger.stderr.read()


def test_an_agent_of_another_protocol_version_is_told_why_and_exits_2(tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "r.json"
    coord = coordinator(
        "noop", "--rps", "50", "--duration", "1s", "--bind", endpoint, "--expect-agents", "1", out=str(out)
    )
    # An agent from the future: protocol 99, pusher-farm 9.9.9.
    script = (
        "import pusher_farm._version as v; v.__version__ = '9.9.9'\n"
        "import pusher_farm.cluster.protocol.messages as p; p.PROTOCOL_VERSION = 99\n"
        "import pusher_farm.cluster.agent.agent_state as s; s.PROTOCOL_VERSION = 99\n"
        "from pusher_farm.cli import main\n"
        f"main(['agent', '--connect', '{endpoint}', '--name', 'future', '-q'])\n"
    )
    started = time.monotonic()
    future = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env())
    took = time.monotonic() - started
    assert future.returncode == 2, future.stderr
    lines = future.stderr.strip().splitlines()
    assert len(lines) == 1, future.stderr
    line = lines[0]
    assert "protocol 99" in line and "pusher-farm 9.9.9" in line
    assert f"protocol {PROTOCOL_VERSION}" in line and f"pusher-farm {pf.__version__}" in line
    assert took < 30  # told at once, not left to time out
    good = agent(endpoint, "good")
    _, err = coord.communicate(timeout=60)
    good.wait(30)
    assert coord.returncode == 0, err
    assert err.count("refused") == 1 and "protocol 99 (pusher-farm 9.9.9)" in err
    d = json.loads(out.read_text())
    assert [a["name"] for a in d["agents"]] == ["good"] and d["agents"][0]["package"] == pf.__version__


def test_a_second_ctrl_c_aborts_calls_in_flight_and_still_reports(tmp_path):
    marker = tmp_path / "started"
    (tmp_path / "slow.py").write_text(
        f"import time\n\ndef nap(ctx):\n    open({str(marker)!r}, 'a').close()\n    time.sleep(20)\n"
    )
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [*FARM, "run", "slow:nap", "--rps", "20", "-d", "60s", "-p", "2", "--json", str(out), "-q"],
        cwd=tmp_path,
        env=env(PYTHONPATH=str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the run never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # stop: calls in flight would be waited for (20 s each)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # abort: they are canceled
    aborted = time.monotonic()
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - aborted
    assert proc.returncode == 1, err
    assert took < 10, f"an abort waited {took:.1f}s for calls that take 20 s"
    d = json.loads(out.read_text())
    c = d["counts"]
    assert balanced(c) and c["planned"] == c["scheduled"] + c["unfired"]
    assert c["failed"] >= 1 and set(d["errors"]) == {"Interrupted"} and d["stopped_early"]


def test_hosts_in_namespaces_survive_a_4s_link_cut(tmp_path):
    from netns import Lab
    from recorder import read

    why = Lab.unavailable()
    if why:
        pytest.skip(why)
    record = tmp_path / "rec"
    record.mkdir()
    out = tmp_path / "r.json"
    rec_env = env(PUSHER_TEST_RECORD=str(record))
    with Lab(["c", "a1", "a2", "t"]) as lab:
        c, t = lab.addr["c"], lab.addr["t"]
        server = lab.popen(
            "t",
            [
                sys.executable,
                "-c",
                "import sys, time\nfrom pusher_farm.demo import DemoServer\n"
                "DemoServer(sys.argv[1], 8080).start()\ntime.sleep(120)",
                t,
            ],
            env=env(),
        )
        try:
            coord = coordinator(
                "http",
                "--url",
                f"http://{t}:8080/",
                "--rps",
                "200",
                "--duration",
                "10s",
                "--bind",
                f"tcp://{c}:5555",
                "--insecure",
                "--expect-agents",
                "2",
                "--agent-timeout",
                "2s",
                out=str(out),
                lab=(lab, "c"),
            )
            agents = [
                lab.popen(
                    h,
                    [
                        *FARM,
                        "agent",
                        "--connect",
                        f"tcp://{c}:5555",
                        "--name",
                        h,
                        "--once",
                        "-q",
                        "--gossip",
                        "recorder:Recorder",
                    ],
                    env=rec_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for h in ("a1", "a2")
            ]
            time.sleep(3)
            lab.link("a1", up=False)
            time.sleep(4)
            lab.link("a1", up=True)
            _, err = coord.communicate(timeout=120)
            for a in agents:
                a.wait(30)
        finally:
            server.kill()
            server.wait(10)
    assert out.exists(), err
    d = json.loads(out.read_text())
    by_name = {a["name"]: a for a in d["agents"]}
    assert by_name["a1"]["lost"] is True and by_name["a2"]["lost"] is False
    ran = {pid: sum(1 for e in events if e[0] == "after-target") for pid, events in read(record).items()}
    for a in d["agents"]:  # every window the cut agent re-sent counted once: no gap, no double
        assert a["counts"]["succeeded"] + a["counts"]["failed"] == ran[a["pid"]], (a, ran)
    assert balanced(d["counts"])
    # Every planned slot is accounted for: the cut agent's share between its stop (its lease
    # ran out) and the new epoch was fired by nobody, and the report says so.
    c = d["counts"]
    assert c["planned"] == 200 * 10 == c["scheduled"] + c["unfired"]
    cut = by_name["a1"]
    assert c["unfired"] == cut["counts"]["unfired"] > 0
    assert cut["unfired_to_s"] == pytest.approx(d["epochs"][0]["at_s"], abs=0.01)
    assert any("never fired" in w and "a1:" in w for w in d["warnings"])
    assert [w["t"] for w in d["series"]][:10] == [float(i) for i in range(10)]
    after = [w for w in d["series"] if w["t"] >= d["epochs"][0]["at_s"] + 1 and w["t"] + 1 <= 10]
    assert len(after) >= 3
    assert after and all(w["rps"] == pytest.approx(200, rel=0.02) for w in after), d["series"]
    # Only the cut agent could not reach the target while its cable was out.
    unreachable = sum(n for kind, n in d["errors"].items() if kind != "HTTP 503")
    assert unreachable <= by_name["a1"]["counts"]["failed"]
