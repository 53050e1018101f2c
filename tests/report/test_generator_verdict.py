"""The generator checks itself: a starved generator is flagged (and can stop the run), a healthy
run is not. Cancels are worked out on the simulator; what only real processes show (the schedule
falling behind a CPU-bound target, a busy core, a healthy run) with real ones."""

import json
from pathlib import Path

import pytest
from farm_cli import env, farm
from sim import SimFarm, run_of

from pusher_farm.core.config import Config
from pusher_farm.core.limits import LimitWatch
from pusher_farm.core.load import Open
from pusher_farm.core.schedule import Constant
from pusher_farm.core.window import Window
from pusher_farm.report import render_summary

HERE = Path(__file__).resolve().parent


def run(tmp_path, *args):
    out = tmp_path / "r.json"
    p = farm("run", *args, "-p", "1", "--json", str(out), "-q", timeout=120, env=env(HERE))
    return p, json.loads(out.read_text())


def on_sim(target, rps, seconds, *, params=None, overtime=1000, **settings):
    scenario = Config(name="w", target=target, params=params or {}, load=Open(Constant(rps, seconds)), timeout=1.0,
                      overtime=overtime)  # fmt: skip
    farm = SimFarm(run_of(scenario, **settings), expect=1)
    farm.agent("a")
    return farm.finish()


def test_a_tiny_overtime_is_flagged_per_agent_and_overall():
    r = on_sim("sleep", 200, 2, params={"ms": 50}, overtime=2)
    v = r.generator_verdict
    assert v["limited"] is True and any("slots canceled" in reason for reason in v["reasons"])
    assert v["agents"][0]["limited"] is True and "generator   LIMITED" in render_summary(r)


def test_a_generator_limited_run_can_stop_itself():
    """Two windows in a row with most slots canceled: --abort-when-generator-limited stops it."""
    r = on_sim("sleep", 200, 20, params={"ms": 50}, overtime=2, abort_when_generator_limited=True)
    assert r.status == 1 and r.stopped_early and r.duration_s < 5
    assert any("the generator was the limit" in n and "slots canceled in window" in n for n in r.notes)


def test_a_healthy_run_is_not_generator_limited_on_the_simulator():
    r = on_sim("sleep", 200, 4, params={"ms": 5}, abort_when_generator_limited=True)
    assert r.generator_verdict["limited"] is False and r.generator_verdict["reasons"] == []
    assert r.status == 0 and not r.stopped_early


@pytest.mark.slow
def test_a_healthy_run_is_not_generator_limited(tmp_path):
    p, d = run(tmp_path, "noop", "--rps", "100", "-d", "1s")
    assert p.returncode == 0, p.stderr
    assert d["generator_verdict"]["limited"] is False and d["generator_verdict"]["reasons"] == []


@pytest.mark.slow
def test_a_cpu_bound_target_is_flagged(tmp_path):
    p, d = run(tmp_path, "burn_targets:burn", "--rps", "200", "-d", "2s")
    assert p.returncode == 0, p.stderr
    assert d["generator_verdict"]["limited"] is True, d["generator_verdict"]


def window(index, lag_ms=1.0, started=100, canceled=0):
    w = Window(index, float(index), 1.0, started=started, canceled=canceled)
    w.lag.record_many([round(lag_ms * 1000)] * max(started, 1))
    return w


@pytest.mark.parametrize(
    ("windows", "fired"),
    [
        ([window(0, 500), window(1), window(2)], None),  # the start is not judged
        ([window(0), window(1, 50), window(2, 50)], "schedule lag p99 50.0 ms in window 2"),
        ([window(0), window(1, 50), window(2), window(3, 50)], None),  # two in a row, not two in all
        ([window(0), window(1, canceled=5), window(2, canceled=5)], "5 of 105 slots canceled in window 2"),
        ([window(0), window(1, canceled=1, started=999), window(2, canceled=1, started=999)], None),  # 0.1%
        ([window(0), window(1, 50), window(2, 50), window(3, 50)], "schedule lag p99 50.0 ms in window 2"),  # once
    ],
    ids=["start", "lag", "lag-not-in-a-row", "cancels", "cancels-under-limit", "once"],
)
def test_the_watch_stops_a_run_at_two_limited_windows_in_a_row(windows, fired):
    reasons = []
    watch = LimitWatch(reasons.append)
    for w in windows:
        watch.add(w)
    assert reasons == ([] if fired is None else [fired])
