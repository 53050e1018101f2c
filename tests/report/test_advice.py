"""The advice in a report's warnings: connection churn is named as such."""

import numpy as np

from pusher_farm.core.results import Report
from pusher_farm.core.stats import Histogram
from pusher_farm.core.tally import Tally
from pusher_farm.core.window import Window
from pusher_farm.report import warnings


def report(calls, connects, connect_us, lag_us):
    w = Window(0, 0.0, 1.0, started=calls, succeeded=calls)
    w.latency.record_many(np.full(calls, 5_000))
    w.service.record_many(np.full(calls, 4_000))
    w.lag.record_many(np.full(calls, lag_us))
    if connects:
        w.phases["connect"] = Histogram()
        w.phases["connect"].record_many(np.full(connects, connect_us))
    tally = Tally(1.0)
    tally.add(w)
    return Report.from_tally(tally, target="http", requested_rps=calls, duration_s=1.0, elapsed_s=1.0)


def test_a_run_that_mostly_connected_says_so_and_does_not_advise_more_hosts():
    said = warnings(report(calls=1000, connects=900, connect_us=4_000, lag_us=20_000))
    assert any("900 of 1000 calls opened a connection first" in w for w in said)
    lag = next(w for w in said if "schedule lag" in w)
    assert "opening connections" in lag and "add processes or hosts" not in lag


def test_a_run_on_a_warm_pool_says_nothing_of_connections():
    said = warnings(report(calls=1000, connects=3, connect_us=1_000, lag_us=20_000))
    assert not any("opened a connection" in w for w in said)
    assert any("add processes or hosts" in w for w in said)
