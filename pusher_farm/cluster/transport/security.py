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

__all__ = ["AgentKeys", "CoordinatorKeys", "check_bind", "check_connect", "generate"]

COORDINATOR = "coordinator"
AUTHORIZED = "authorized"

_SCHEMES = ("tcp", "ipc", "inproc")
_LOOPBACK = ("127.", "localhost:", "[::1]:", "::1:")


def check_bind(endpoint: str, *, secured: bool) -> None:
    """Refuse an endpoint that is not one, and a TCP bind beyond loopback unless ``secured``
    (keys given, or the caller said insecure on purpose): anyone who reaches an open
    coordinator port could join the farm and steer its load."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in _SCHEMES or not rest:
        raise FarmError(f"bind {endpoint!r}: give an endpoint like tcp://127.0.0.1:5555")
    if scheme == "tcp" and not rest.startswith(_LOOPBACK) and not secured:
        raise FarmError(
            f"bind {endpoint} is reachable from other hosts and agents are not authenticated: "
            "give keys (farm keys generate DIR, then --keys DIR), bind 127.0.0.1, or pass --insecure"
        )


def check_connect(endpoint: str) -> None:
    """Refuse what is not an endpoint to connect to."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in _SCHEMES or not rest:
        raise FarmError(f"connect {endpoint!r}: give an endpoint like tcp://HOST:5555")


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
