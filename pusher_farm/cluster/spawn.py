"""Local agents: ``farm run -p N`` and the Python ``farm``/``force`` start N agent processes on
this host and a coordinator on loopback: the same code path as fifty hosts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

from pusher_farm.cluster.control.server import ControlServer
from pusher_farm.cluster.coordinator.coordinator import Coordinator, WindowListener
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.results import Report
from pusher_farm.core.run import Run

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


def _reap(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """Let the agents leave on their own for ``grace`` seconds in all, then end them."""
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.terminate()
    for p in procs:
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local(
    run: Run,
    processes: int,
    *,
    listeners: Iterable[WindowListener] = (),
    timing: Timing | None = None,
    quiet_agents: bool = True,
    on_coordinator: Callable[[Coordinator], None] | None = None,
    control: ControlServer | None = None,
) -> Report:
    """Run ``run`` on ``processes`` local agents; returns the merged report."""
    timing = timing or Timing(wait_timeout=30.0)
    with Coordinator(
        run, bind="tcp://127.0.0.1:*", expect=processes, timing=timing, listeners=listeners, control=control
    ) as coord:
        if on_coordinator is not None:
            on_coordinator(coord)
        procs = spawn_agents(coord.endpoint, processes, quiet=quiet_agents)
        report = None
        try:
            report = coord.serve()
        finally:
            # Done agents leave within a second (their last messages' linger); after an abort
            # or a failure, whatever is still there is not waited for long.
            _reap(procs, 10.0 if report is not None and report.status == 0 else 2.0)
    assert report is not None
    return report
