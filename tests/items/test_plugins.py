"""A plugin package, installed for the test, is found by name on every agent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FARM

pytestmark = pytest.mark.slow

PACKAGE = Path(__file__).resolve().parent.parent / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """The plugin package installed (pip, into a folder of its own) and on the path."""
    target = tmp_path_factory.mktemp("site")
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(PACKAGE)],
        capture_output=True, text=True, timeout=300, cwd=target,
    )  # fmt: skip
    if p.returncode != 0:
        pytest.fail(f"installing the plugin package failed: {p.stderr[-2000:]}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")])
    return env


def test_farm_plugins_lists_each_name_with_its_package(plugin_env):
    p = subprocess.run([*FARM, "plugins"], capture_output=True, text=True, timeout=60, env=plugin_env)
    assert p.returncode == 0, p.stderr
    rows = {(*line.split()[:2], line) for line in p.stdout.splitlines()}
    text = p.stdout
    assert "example-echo" in text and "farm-plugin-example 1.0" in text and "farm_plugin_example:echo" in text
    assert any(r[:2] == ("target", "http") and "built-in" in r[2] for r in rows)
    assert "example-count" in text and "example-record" in text


def test_a_target_feed_and_failure_handler_by_name_on_every_agent(plugin_env, tmp_path):
    failed, out = tmp_path / "failed.txt", tmp_path / "r.json"
    plugin_env = {**plugin_env, "FARM_PLUGIN_FAILED": str(failed)}
    p = subprocess.run(
        [*FARM, "run", "example-echo", "--feed", "example-count:60", "--drain", "--parallel", "3", "-p", "2",
         "--failure-handler", "example-record", "--results", str(tmp_path / "res.jsonl"), "--json", str(out), "-q"],
        capture_output=True, text=True, timeout=120, env=plugin_env,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["items"]["by_status"] == {"success": 54, "failure": 6}
    assert sorted(map(int, failed.read_text().split())) == list(range(0, 60, 10))
    pids = {json.loads(line)["result"]["pid"] for line in (tmp_path / "res.jsonl").read_text().splitlines()
            if '"success"' in line}  # fmt: skip
    assert len(pids) == 2  # both agents found the target by its name


def test_an_unknown_name_lists_the_known_ones(plugin_env):
    p = subprocess.run([*FARM, "run", "nope", "--rps", "1", "-d", "1s"], capture_output=True, text=True,
                       timeout=60, env=plugin_env)  # fmt: skip
    assert p.returncode == 2 and "http" in p.stderr and "example-echo" in p.stderr and "farm plugins" in p.stderr
    p = subprocess.run([*FARM, "run", "noop", "--feed", "x.txt", "--drain"], capture_output=True, text=True,
                       timeout=60, env=plugin_env)  # fmt: skip
    assert p.returncode == 2 and "example-count:ARGUMENT" in p.stderr
    p = subprocess.run([*FARM, "run", "noop", "--feed", "example-count:3", "--drain", "--failure-handler", "nope"],
                       capture_output=True, text=True, timeout=60, env=plugin_env)  # fmt: skip
    assert p.returncode == 2 and "example-record" in p.stderr and "dead-letter" in p.stderr
