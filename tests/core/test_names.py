"""Results by name: calls carry a name (their scenario's, or what the target sets), folded into
per-name rows that merge exactly and stay bounded."""

import asyncio

import pytest

from pusher_farm import Scenario, hire, inline
from pusher_farm.core.offers import _offer, with_overtime, with_timeout, with_users
from pusher_farm.core.recorder import Recorder
from pusher_farm.core.tally import Tally
from pusher_farm.core.window import OTHER_NAMES, NameRow, Window
from pusher_farm.report import to_dict, warnings


def _recorder(**kw):
    windows = []
    r = Recorder(1.0, windows.append, **kw)
    r.t0 = 0.0
    return r, windows


def _call(r, name, end, kind=None):
    if kind is None:
        r.ok[0].append(end - 0.01)
        r.ok[1].append(end - 0.01)
        r.ok[2].append(end)
        r.ok[3].append(name)
    else:
        for buf, v in zip(r.ko, (end - 0.01, end - 0.01, end, kind, name), strict=True):
            buf.append(v)


def test_calls_without_a_name_leave_the_window_unsplit():
    r, windows = _recorder(name="browse")
    for i in range(10):
        _call(r, None, 0.1 + i * 0.01)
    r.flush(2.0, final=True)
    w = windows[0]
    assert w.scenario == "browse" and w.succeeded == 10 and w.names == {}


def test_named_and_unnamed_calls_split_by_name_and_add_up():
    r, windows = _recorder(name="browse")
    for i in range(6):
        _call(r, None, 0.1 + i * 0.01)
    r.flush(0.5, final=False)  # the unnamed ones folded first, in the same window
    for i in range(4):
        _call(r, "GET /a", 0.3 + i * 0.01)
    _call(r, "GET /b", 0.4, kind="HTTP 500")
    _call(r, None, 0.45, kind="Timeout")
    r.flush(2.0, final=True)
    (w,) = windows
    assert set(w.names) == {"browse", "GET /a", "GET /b"}
    assert (w.names["browse"].succeeded, w.names["browse"].failed) == (6, 1)
    assert w.names["GET /a"].succeeded == 4 and w.names["GET /b"].errors == {"HTTP 500": 1}
    assert sum(n.latency.total for n in w.names.values()) == w.latency.total == 12
    again = Window.from_wire(w.to_wire())
    assert again.names["GET /a"].latency.total == 4 and again.scenario == "browse"


def test_names_past_the_bound_go_under_other():
    r, windows = _recorder(name="s", max_names=5)
    for i in range(20):
        _call(r, f"n{i}", 0.1 + i * 0.001)
    r.flush(2.0, final=True)
    (w,) = windows
    assert len(w.names) <= 6 and OTHER_NAMES in w.names
    assert sum(n.succeeded for n in w.names.values()) == 20 and r.names_over > 0


def test_a_peers_names_must_add_up():
    w = Window(0, 0.0, 1.0, succeeded=2, scenario="s")
    w.latency.record_many([1, 2])
    w.service.record_many([1, 2])
    w.lag.record_many([0, 0])
    row = NameRow(1)
    row.latency.record(1)
    row.service.record(1)
    w.names = {"a": row}
    with pytest.raises(ValueError, match="add up"):
        Window.from_wire(w.to_wire())
    wire = w.to_wire()
    wire["nm"] = {"a": {"ok": 2, "ko": 0, "err": {}, "lat": {}, "svc": {}}}
    with pytest.raises(ValueError):
        Window.from_wire(wire)


def test_tally_merges_names_across_sources_within_its_bound():
    tally = Tally(1.0, max_names=3)
    for source in range(2):
        w = Window(0, 0.0, 1.0, scenario="s")
        for k in range(3):
            name = f"s{source}-{k}"
            row = NameRow(1)
            row.latency.record(1000)
            row.service.record(1000)
            w.names[name] = row
            w.succeeded += 1
            w.latency.record(1000)
            w.service.record(1000)
            w.lag.record(0)
        tally.add(w)
    names = tally.total.names
    assert len(names) == 4 and names[OTHER_NAMES].succeeded == 3
    assert sum(r.succeeded for r in names.values()) == tally.total.succeeded == 6
    assert tally.scenarios["s"].succeeded == 6


@inline
def _named(ctx):
    ctx.name = f"item {ctx.seq % 3}"


def test_a_target_names_its_calls_in_process():
    report = hire("w", _named).work_sync(1000, 0.5)
    rows = {n.name: n.calls for n in report.names}
    assert rows == {"item 0": 167, "item 1": 167, "item 2": 166}
    d = to_dict(report)
    assert [s["name"] for s in d["scenarios"]] == ["default"] and d["scenarios"][0]["counts"]["scheduled"] == 500


@inline
def _unique(ctx):
    ctx.name = f"/users/{ctx.seq}"


def test_unbounded_names_are_bounded_and_the_report_says_so():
    report = hire("w", _unique, _offer(max_names=10)).work_sync(2000, 0.5)
    assert len(report.names) <= 11
    assert sum(n.calls for n in report.names) == 1000
    assert any("counted under 'other'" in w for w in warnings(report))


async def _ten_ms(ctx):
    await asyncio.sleep(0.01)


def test_closed_model_iterations_make_exactly_users_times_iterations_calls():
    report = hire("w", _ten_ms, with_users(20, iterations=5)).work_sync()
    assert report.counts.scheduled == report.counts.succeeded == 100
    (row,) = report.scenarios
    assert row.model == "closed" and row.counts.planned == 100
    assert report.lag.max == 0 and report.latency.total == report.service.total  # latency is service time


def test_scenarios_refuse_bad_input_naming_the_scenario_and_the_key():
    from pusher_farm.core.scenario import build_run, scenario_from_table
    from pusher_farm.errors import InvalidOption

    def refused(scenarios, duration=10.0):
        with pytest.raises(InvalidOption) as e:
            build_run(scenarios, duration=duration)
        return e.value.reason

    assert "'a', key 'name'" in refused([Scenario("a", "noop", rps=1), Scenario("a", "noop", rps=2)])
    assert "'b', key 'users'" in refused([Scenario("b", "noop", rps=1, users=3)])
    assert "'c', key 'start'" in refused([Scenario("c", "noop", rps=1, start="12s")])
    assert "'d', key 'think'" in refused([Scenario("d", "noop", rps=1, think="90ms")])
    assert "'e', key 'iterations'" in refused([Scenario("e", "noop", rps=1, iterations=3)])
    assert "'f', key 'overtime'" in refused([Scenario("f", "noop", rps=1, overtime=-1)])
    assert "'g', key 'parallel': is for drain mode" in refused([Scenario("g", "noop", rps=1, feed=[1], parallel=3)])
    assert "'h', key 'drain': works on items" in refused([Scenario("h", "noop", drain=True)])
    assert "'i', key 'stages': a drain takes a rate cap" in refused([Scenario("i", "noop", feed=[1], drain=True,
                                                                             stages="1s:1")])  # fmt: skip
    assert "'j', key 'parallel'" in refused([Scenario("j", "noop", feed=[1], drain=True, parallel=20, overtime=5)])
    assert "'k', key 'users'" in refused([Scenario("k", "noop", users=3)], duration=None)  # users without an end
    with pytest.raises(InvalidOption, match="'g', key 'colour': unknown key"):
        scenario_from_table({"name": "g", "target": "noop", "colour": "red"}, 1)
    with pytest.raises(InvalidOption, match="'#2', key 'name'"):
        scenario_from_table({"target": "noop"}, 2)


def test_names_that_are_not_text_are_counted_as_text():
    r, windows = _recorder(name="s")
    _call(r, 7, 0.1)
    _call(r, ["a", "list"], 0.2)  # unhashable: still counted, by its text
    _call(r, "GET /x", 0.3)
    r.flush(2.0, final=True)
    (w,) = windows
    assert set(w.names) == {"7", "['a', 'list']", "GET /x"}
    assert Window.from_wire(w.to_wire()).succeeded == 3


def test_one_name_for_a_whole_batch_takes_the_quick_way_and_counts_the_same():
    r, windows = _recorder(name="s")
    for i in range(50):
        _call(r, "GET /users/{id}", 0.1 + i * 0.001)
    r.flush(0.5, final=False)
    for i in range(50):
        _call(r, "GET /users/{id}", 0.2 + i * 0.001, kind="HTTP 503" if i % 2 else None)
    r.flush(2.0, final=True)
    (w,) = windows
    row = w.names["GET /users/{id}"]
    assert (row.succeeded, row.failed, dict(row.errors)) == (75, 25, {"HTTP 503": 25})
    assert set(w.names) == {"GET /users/{id}"} and row.latency.total == w.latency.total == 100


def _hang(ctx):
    import time

    time.sleep(3)


def test_a_closed_model_ends_with_its_run_whatever_its_users_are_doing():
    # users thinking for 5 s, or stuck in a call past its timeout, do not hold the run open
    thinking = hire("w", _ten_ms, with_users(3, think=5.0)).work_sync(None, 0.2)
    assert thinking.counts.scheduled == 3 and thinking.ran_s < 2.0
    stuck = hire("w", _hang, with_users(2), with_timeout(0.2)).work_sync(None, 0.3)
    assert stuck.errors == {"Timeout": 2} and stuck.ran_s < 2.5


def test_users_beyond_overtime_wait_for_room_and_cancel_nothing():
    in_flight = [0, 0]  # now, most

    async def counted(ctx):
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(0.01)
        in_flight[0] -= 1

    report = hire("w", counted, with_users(10), with_overtime(3)).work_sync(None, 0.3)
    c = report.counts
    assert c.canceled == 0 and c.scheduled == c.succeeded == c.planned > 30  # ~3 calls every 10 ms
    assert in_flight[1] == 3  # ten users, never more than three calls in flight: the rest waited
