"""The ``farm`` command two ways: as a real process (the end-to-end proof, marked slow) and in
this process (what a usage error prints and its exit status, in milliseconds: every refusal
happens before any process or socket is started)."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FARM = [sys.executable, "-m", "pusher_farm"]


def env(*paths: str | Path, **extra: str) -> dict[str, str]:
    """This environment with ``paths`` first on the import path (where a test's targets live)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([*map(str, paths), e.get("PYTHONPATH", "")])
    e.update(extra)
    return e


def farm(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    """``farm ARGS`` as a real process."""
    return subprocess.run([*FARM, *args], capture_output=True, text=True, timeout=timeout, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Said:
    """What ``farm ARGS`` printed and its exit status, run in this process."""

    status: int
    stdout: str
    stderr: str


def farm_here(*args: str, cwd: str | Path | None = None) -> Said:
    """``farm ARGS`` through the command's own entry point in this process (``cwd``: run from
    there, as a user's shell would)."""
    from pusher_farm.cli import main

    out, err = io.StringIO(), io.StringIO()
    status = 0
    here = os.getcwd()
    path = list(sys.path)
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(here)
        sys.path[:] = path  # main puts the current directory first
    return Said(status, out.getvalue(), err.getvalue())


def usage_error(*args: str, cwd: str | Path | None = None) -> str:
    """The one line ``farm ARGS`` refuses with (exit 2, nothing on stdout, no traceback)."""
    said = farm_here(*args, cwd=cwd)
    assert said.status == 2, said
    lines = said.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in said.stderr and said.stdout == "", said
    return lines[0]
