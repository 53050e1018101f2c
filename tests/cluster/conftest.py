import pytest
from sim import SimFarm


@pytest.fixture(autouse=True)
def _close_farms():
    """Every simulated farm a test made ends with it: its tasks, its loop, its items."""
    yield
    while SimFarm.open_farms:
        SimFarm.open_farms.pop().close()
