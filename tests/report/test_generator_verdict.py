"""The generator checks itself: a starved generator is flagged, a healthy run is not."""

import json
import os
import subprocess
import sys
from pathlib import Path

FARM = [sys.executable, "-m", "pusher_farm"]
HERE = Path(__file__).resolve().parent


def run(tmp_path, *args):
    out = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([*FARM, "run", *args, "-p", "1", "--json", str(out), "-q"], capture_output=True, text=True,
                       timeout=120, env=env)  # fmt: skip
    return p, json.loads(out.read_text())


def test_a_healthy_run_is_not_generator_limited(tmp_path):
    p, d = run(tmp_path, "noop", "--rps", "100", "-d", "2s")
    assert p.returncode == 0, p.stderr
    assert d["generator_verdict"]["limited"] is False and d["generator_verdict"]["reasons"] == []


def test_a_tiny_overtime_is_flagged_per_agent_and_overall(tmp_path):
    p, d = run(tmp_path, "sleep", "--param", "ms=50", "--rps", "200", "-d", "2s", "--overtime", "2")
    assert p.returncode == 0, p.stderr
    v = d["generator_verdict"]
    assert v["limited"] is True and any("slots canceled" in r for r in v["reasons"])
    assert v["agents"][0]["limited"] is True and "generator   LIMITED" in p.stdout + p.stderr


def test_a_cpu_bound_target_is_flagged_and_can_stop_the_run(tmp_path):
    p, d = run(tmp_path, "burn_targets:burn", "--rps", "200", "-d", "4s")
    assert d["generator_verdict"]["limited"] is True, d["generator_verdict"]
    p, d = run(tmp_path, "burn_targets:burn", "--rps", "200", "-d", "20s", "--abort-when-generator-limited")
    assert p.returncode == 1 and d["stopped_early"]
    assert any("the generator was the limit" in w for w in d["warnings"])
