"""CURVE keys for the farm: who may command agents, and which agents may join.

``generate(DIR, agents=N)`` writes a ZeroMQ CURVE certificate for the coordinator and one per
agent, and copies the agents' public keys into ``DIR/authorized``. The coordinator needs
``coordinator.key_secret`` and ``authorized/``; an agent's host needs its own
``agent-I.key_secret`` and ``coordinator.key`` (the public half), so an agent talks only to the
coordinator it was given, and the coordinator only to agents it authorised.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from pusher_farm.errors import FarmError

__all__ = ["AgentKeys", "CoordinatorKeys", "generate"]

COORDINATOR = "coordinator"
AUTHORIZED = "authorized"


@dataclass(frozen=True)
class CoordinatorKeys:
    public: bytes
    secret: bytes
    authorized: Path

    @classmethod
    def load(cls, directory: str | Path) -> CoordinatorKeys:
        d = Path(directory)
        public, secret = _load(d / f"{COORDINATOR}.key_secret", "the coordinator's secret key")
        authorized = d / AUTHORIZED
        if not authorized.is_dir() or not any(authorized.glob("*.key")):
            raise FarmError(f"no authorised agent keys in {authorized}: run `farm keys generate {d}`")
        return cls(public, secret, authorized)


@dataclass(frozen=True)
class AgentKeys:
    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, directory: str | Path, name: str) -> AgentKeys:
        d = Path(directory)
        public, secret = _load(d / f"{name}.key_secret", f"agent key {name!r}")
        server, _ = _load(d / f"{COORDINATOR}.key", "the coordinator's public key", need_secret=False)
        return cls(public, secret, server)


def _load(path: Path, what: str, *, need_secret: bool = True) -> tuple[bytes, bytes]:
    if not path.is_file():
        raise FarmError(f"{what} not found at {path}: run `farm keys generate {path.parent}`")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except Exception as exc:
        raise FarmError(f"{path} is not a ZeroMQ certificate: {exc}") from None
    if need_secret and not secret:
        raise FarmError(f"{path} holds no secret key")
    return public, secret or b""


def generate(directory: str | Path, agents: int = 1) -> list[Path]:
    """Write the coordinator's and ``agents`` agents' certificates; returns the files made."""
    if agents < 1:
        raise FarmError("generate at least one agent key")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    made = []
    if (d / f"{COORDINATOR}.key_secret").exists():
        raise FarmError(f"{d} already holds keys: use another folder (keys are never overwritten)")
    public, secret = zmq.auth.create_certificates(d, COORDINATOR)
    made += [Path(public), Path(secret)]
    authorized = d / AUTHORIZED
    authorized.mkdir(exist_ok=True)
    for i in range(agents):
        public, secret = zmq.auth.create_certificates(d, f"agent-{i}")
        shutil.copy(public, authorized / Path(public).name)
        made += [Path(public), Path(secret)]
    for path in d.glob("*.key_secret"):
        path.chmod(0o600)
    return made
