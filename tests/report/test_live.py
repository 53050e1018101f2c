"""The live view on a terminal (a pseudo-terminal made here), plain lines otherwise, nothing with -q."""

import os
import pty
import subprocess
import time

import pytest
from farm_cli import FARM, farm

pytestmark = pytest.mark.slow


def test_on_a_terminal_the_run_is_shown_live_with_its_agents_and_time_left():
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    p = subprocess.Popen([*FARM, "run", "sleep", "--param", "ms=2", "--rps", "200", "-d", "2s", "-p", "2"],
                         stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)  # fmt: skip
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the run is over
            break
        if not chunk:
            break
        out += chunk
    p.wait(30)
    os.close(master)
    text = out.decode(errors="replace")
    assert p.returncode == 0, text[-2000:]
    for piece in ("s left", "requested/s", "achieved/s", "p99 ms", "lag p99 ms", "agents", "local-0", "local-1"):
        assert piece in text, piece
    assert "succeeded 400" in text  # the summary after the view


def test_not_on_a_terminal_a_plain_line_per_window_and_nothing_with_q():
    p = farm("run", "noop", "--rps", "100", "-d", "1s", "--window", "500ms", "-p", "1")
    lines = [line for line in p.stderr.splitlines() if line.startswith("[")]
    assert p.returncode == 0 and len(lines) >= 2 and "started" in lines[0]
    p = farm("run", "noop", "--rps", "100", "-d", "1s", "-p", "1", "-q")
    assert not [line for line in p.stderr.splitlines() if line.startswith("[")]
