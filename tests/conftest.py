import pytest

from pusher_farm.demo import DemoServer


@pytest.fixture
def demo_server():
    with DemoServer() as server:
        yield server
