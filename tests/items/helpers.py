"""What the work-item tests share: the farm command, an environment that finds their targets,
feeds made here, and free ports."""

import json
import os
import socket
import subprocess
import sys
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
