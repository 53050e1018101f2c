"""Local agents: ``farm run -p N`` and the Python ``farm``/``force`` start N agent processes on
this host and a coordinator on loopback: the same code path as fifty hosts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable

from pusher_farm.cluster.coordinator import Coordinator, WindowListener
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.cluster.state import Timing
from pusher_farm.core.report import Report

__all__ = ["run_local", "spawn_agents"]


def spawn_agents(
    endpoint: str, count: int, *, prefix: str = "local", quiet: bool = True
) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` agent processes serving one run from ``endpoint`` (``--once``).

    They get this process's import path, so any target importable here is importable there.
    """
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *paths])
    procs = []
    for i in range(count):
        args = [sys.executable, "-m", "pusher_farm", "agent", "--connect", endpoint, "--name", f"{prefix}-{i}"]
        args.append("--once")
        if quiet:
            args.append("--quiet")
        # A session of their own: Ctrl-C goes to the coordinator, which stops them in order.
        procs.append(subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, start_new_session=True))
    return procs


def _reap(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local(
    spec: RunSpec,
    processes: int,
    *,
    listeners: Iterable[WindowListener] = (),
    timing: Timing | None = None,
    quiet_agents: bool = True,
    on_coordinator: object = None,
) -> Report:
    """Run ``spec`` on ``processes`` local agents; returns the merged report."""
    timing = timing or Timing(wait_timeout=30.0)
    with Coordinator(spec, bind="tcp://127.0.0.1:*", expect=processes, timing=timing, listeners=listeners) as coord:
        if callable(on_coordinator):
            on_coordinator(coord)
        procs = spawn_agents(coord.endpoint, processes, quiet=quiet_agents)
        try:
            report = coord.run()
        finally:
            _reap(procs)
    return report
