import shutil
import subprocess

import pytest
from sim import SimFarm

from pusher_farm.demo import DemoServer


@pytest.fixture(autouse=True)
def _close_farms():
    """Every simulated farm a test made ends with it: its tasks, its loop, its items."""
    yield
    while SimFarm.open_farms:
        SimFarm.open_farms.pop().close()


@pytest.fixture
def demo_server():
    with DemoServer() as server:
        yield server


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
