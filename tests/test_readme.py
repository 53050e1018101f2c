"""Every example in the README runs as written."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def console_commands():
    """`$ farm ...` lines of console blocks, with the output shown under them (if any)."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        lines = block.strip().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                expected = []
                for nxt in lines[i + 1 :]:
                    if nxt.startswith("$ "):
                        break
                    expected.append(nxt)
                out.append((line[2:], expected))
    return out


COMMANDS = console_commands()


def test_readme_has_examples():
    assert len(COMMANDS) >= 4


@pytest.mark.parametrize(("command", "expected"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_readme_console_example(command, expected, tmp_path):
    args = shlex.split(command)
    assert args[0] == "farm"
    args = [sys.executable, "-m", "pusher_farm", *args[1:]]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)
    (ROOT / "report.json").unlink(missing_ok=True)
    if expected:
        assert (p.stdout + p.stderr).strip().splitlines()[-len(expected) :] == expected
    else:
        assert p.returncode == 0, p.stderr


def test_readme_python_example():
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "succeeded=200" in p.stdout


def test_quickstart_example():
    p = subprocess.run([sys.executable, "examples/quickstart.py"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "listener heard 200 calls end" in p.stdout
