"""What the work-item tests share: the farm command, an environment that finds their targets,
feeds made here, and free ports."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FARM = [sys.executable, "-m", "pusher_farm"]


def env(**extra):
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(HERE), e.get("PYTHONPATH", "")])
    e.update(extra)
    return e


def feed(tmp_path, n, name="items.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": i, "body": {"n": i}}) + "\n" for i in range(n)))
    return path


def farm_run(tmp_path, *args, environ=None, timeout=120):
    out = tmp_path / "report.json"
    p = subprocess.run(
        [*FARM, "run", *args, "--json", str(out), "-q"], capture_output=True, text=True, timeout=timeout,
        env=environ or env(),
    )  # fmt: skip
    return p, (json.loads(out.read_text()) if out.exists() else None)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain_and_disturb(tmp_path, feed_spec, agents, disturb, *, after, extra=()):
    """``farm coordinator item_targets:slow --drain`` with ``agents`` agent processes on
    ``feed_spec``; once ``after`` results are in, ``disturb(agent_processes)`` (kill one, stop
    one). Returns (exit status, stderr, report, result records)."""
    results, out = tmp_path / "results.jsonl", tmp_path / "report.json"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    coord = subprocess.Popen(
        [*FARM, "coordinator", "item_targets:slow", "--bind", endpoint, "-n", str(agents), "--feed", feed_spec,
         "--drain", "--results", str(results), "--json", str(out), "-q", *extra],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    procs = [
        subprocess.Popen(
            [*FARM, "agent", "--connect", endpoint, "--name", f"a{i}", "--once", "-q"],
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(agents)
    ]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < after):
            time.sleep(0.05)
        disturb(procs)
        _, err = coord.communicate(timeout=180)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return coord.returncode, err, json.loads(out.read_text()), lines(results)
