"""A Gossiper for farm tests: agents load it with --gossip recorder:Recorder and it writes
every event to $PUSHER_TEST_RECORD/<pid>.txt (one line per gossip)."""

import os
from pathlib import Path


class Recorder:
    def __init__(self):
        folder = Path(os.environ["PUSHER_TEST_RECORD"])
        self.path = folder / f"{os.getpid()}.txt"
        self.lines = []

    def listen(self, worker, gossips):
        with self.path.open("a") as f:
            for g in gossips:
                f.write(f"{g.when.value} {g.seq} {g.intended!r} {g.started!r} {g.ended!r} {g.error}\n")
                f.flush()

    def stop(self):
        pass


def read(folder):
    """{pid: [(when, seq, intended, started, ended, error), ...]}"""
    out = {}
    for p in Path(folder).glob("*.txt"):
        rows = []
        for line in p.read_text().splitlines():
            when, seq, intended, started, ended, error = line.split(" ")
            f = lambda x: None if x == "None" else float(x)  # noqa: E731
            rows.append((when, int(seq), f(intended), f(started), f(ended), None if error == "None" else error))
        out[int(p.stem)] = rows
    return out


def hit(ctx):
    return None


def _make_picky():
    """Builds in the process that made it, refuses anywhere else (a farm agent)."""
    from pusher_farm.errors import InvalidOption

    if os.environ.get("PUSHER_TEST_HOME") != str(os.getpid()):
        raise InvalidOption(f"picky builds only in process {os.environ.get('PUSHER_TEST_HOME')}")

    def picky(ctx):
        return None

    return picky


def _plugin():
    from pusher_farm.targets import Plugin

    return Plugin("picky", _make_picky)


PICKY = _plugin()


def crash(ctx):
    """Kills its own process at slot 40: an agent that dies mid-run."""
    if ctx.seq == 40:
        os._exit(3)
