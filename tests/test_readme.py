"""Every example in the README runs as written."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def console_blocks():
    """Each console block: its `$ ` command lines, each with the output shown under it."""
    blocks = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        lines = block.strip().splitlines()
        commands = []
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                expected = []
                for nxt in lines[i + 1 :]:
                    if nxt.startswith("$ "):
                        break
                    expected.append(nxt)
                commands.append((line[2:], expected))
        blocks.append(commands)
    return blocks


BLOCKS = console_blocks()
ENV = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def test_readme_has_examples():
    assert sum(len(b) for b in BLOCKS) >= 7


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b[0][0] for b in BLOCKS])
def test_readme_console_block(block):
    """Commands with output shown must print exactly that; the rest run as one shell script."""
    if block[0][0].startswith("redis-server") and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it: apt-get install redis-server)")
    script = ["set -e"]
    for command, expected in block:
        assert command.split()[0] in ("farm", "redis-server", "redis-cli")
        if expected:
            p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, cwd=ROOT, env=ENV)
            assert (p.stdout + p.stderr).strip().splitlines()[-len(expected) :] == expected
        else:
            script.append(command)
    p = subprocess.run(
        ["bash", "-c", "\n".join([*script, "wait"])], capture_output=True, text=True, timeout=180, cwd=ROOT, env=ENV
    )
    for leftover in ("report.json", "farm.json", "results.jsonl", "dead.jsonl"):
        (ROOT / leftover).unlink(missing_ok=True)
    shutil.rmtree(ROOT / "farm-keys", ignore_errors=True)
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
def test_readme_python_example():
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "succeeded=200" in p.stdout


@pytest.mark.slow
def test_quickstart_example():
    p = subprocess.run([sys.executable, "examples/quickstart.py"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "listener heard 200 calls end" in p.stdout
