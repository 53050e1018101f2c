import asyncio
import dataclasses
import threading
import time

import pytest

import pusher_farm as pf
from pusher_farm import When, hire, with_gossips, with_overtime, with_profile, with_timeout
from pusher_farm.core.config import DEFAULT_BATCH
from pusher_farm.report import warnings
from pusher_farm.targets import resolve

noop = resolve("noop")


async def async_noop(ctx):
    return "ok"


def sync_noop(ctx):
    return "ok"


def balanced(report):
    c = report.counts
    return c.scheduled == c.succeeded + c.failed + c.canceled


def test_rps_400_for_1s_schedules_400_slots():
    report = pf.work(400, 1, noop, pf.with_window(0.5))
    assert abs(report.counts.scheduled - 400) <= 1
    assert report.counts.succeeded == report.counts.scheduled
    assert balanced(report)
    assert report.achieved_rps == pytest.approx(400, rel=0.01)
    assert len(report.series) >= 2


def test_throughput_counts_from_the_first_slot_not_from_start_up():
    r = pf.work(100, 1, async_noop)
    assert r.counts.succeeded == 100
    assert 80 < r.throughput_rps <= 100 and r.ran_s >= 0.99


def test_a_fractional_rate_gives_its_exact_count():
    report = pf.work(2.5, 0.8, async_noop)  # slots at 0 and 0.4 s
    assert report.counts.scheduled == 2 and report.counts.succeeded == 2


def test_overtime_zero_cancels_everything():
    report = pf.work(100, 0.5, async_noop, with_overtime(0))
    assert report.counts.canceled == report.counts.scheduled == 50
    assert report.counts.succeeded == 0 and balanced(report)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_slow_target_with_overtime_2_cancels_most(kind):
    if kind == "async":

        async def slow(ctx):
            await asyncio.sleep(0.05)

    else:

        def slow(ctx):
            time.sleep(0.05)

    report = pf.work(200, 1, slow, with_overtime(2))
    c = report.counts
    assert abs(c.scheduled - 200) <= 1
    assert c.canceled > c.scheduled / 2
    assert c.succeeded >= 20  # two at a time, 50 ms each, for a second
    assert balanced(report)
    # Latency is measured from the intended start: never below the service time.
    assert report.latency.percentile(50) >= report.service.percentile(50) - 1000


@pytest.mark.parametrize("target", [async_noop, sync_noop])
def test_sync_and_async_targets(target):
    report = pf.work(200, 0.5, target)
    assert report.counts.succeeded == report.counts.scheduled == 100
    assert report.service.total == 100 and report.lag.total == 100


def test_exceptions_are_counted_by_type_and_never_escape():
    def flaky(ctx):
        if ctx.seq % 3 == 0:
            raise ValueError("boom")
        if ctx.seq % 3 == 1:
            raise pf.TargetError("HTTP 503", "busy")
        return 1

    async def aflaky(ctx):
        if ctx.seq % 2:
            raise KeyError(ctx.seq)
        if ctx.seq % 5 == 0:
            raise GeneratorExit  # a BaseException that is not fatal to the process

    r = pf.work(180, 0.5, flaky)
    assert r.errors == {"ValueError": 30, "HTTP 503": 30}
    assert r.counts.succeeded == 30 and r.counts.failed == 60 and balanced(r)
    r = pf.work(200, 0.5, aflaky)
    assert r.errors["KeyError"] == 50 and r.errors["GeneratorExit"] == 10 and balanced(r)


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_timeout_bounds_each_call(kind):
    if kind == "async":

        async def hang(ctx):
            await asyncio.sleep(30)

    else:

        def hang(ctx):
            while not ctx.cancelled:
                time.sleep(0.005)

    started = time.monotonic()
    r = pf.work(20, 0.5, hang, with_timeout(0.2))
    assert time.monotonic() - started < 5
    assert r.errors == {"Timeout": 10} and r.counts.failed == 10 and balanced(r)
    assert r.latency.percentile(50) >= 190_000


class Recorder:
    def __init__(self, delay=0.0):
        self.seen = []
        self.stops = 0
        self.delay = delay
        self.thread = None

    def listen(self, worker, gossips):
        self.thread = threading.current_thread()
        for g in gossips:
            if self.delay:
                time.sleep(self.delay)
            self.seen.append(g)

    def stop(self):
        self.stops += 1


def test_gossips_before_equals_after_and_stop_called_once():
    a, b = Recorder(), Recorder()
    r = pf.work(400, 0.5, async_noop, with_gossips(a, b))
    for rec in (a, b):
        before = [g for g in rec.seen if g.when is When.BEFORE_TARGET]
        after = [g for g in rec.seen if g.when is When.AFTER_TARGET]
        assert len(before) == len(after) == r.counts.succeeded
        assert rec.stops == 1
        assert rec.thread is not threading.main_thread()
        # A slot starts at its intended time or, launched with its wake-up's batch, up to 4 ms early.
        assert all(g.ended >= g.started >= g.intended - DEFAULT_BATCH - 1e-6 for g in after)
        assert sorted(g.seq for g in after) == list(range(len(after)))
    assert r.gossip_dropped == 0
    assert r.elapsed_s < 5  # listeners end with their streams; nobody waits on a join timeout


def test_canceled_gossips_are_delivered():
    rec = Recorder()
    r = pf.work(100, 0.5, async_noop, with_overtime(0), with_gossips(rec))
    assert r.counts.canceled == r.counts.scheduled == 50  # overtime 0: every slot canceled
    assert [g.when for g in rec.seen] == [When.CANCELED] * 50
    assert sorted(g.seq for g in rec.seen) == list(range(50))  # each slot's own, once


def test_slow_listener_never_slows_the_schedule_and_drops_are_counted():
    rec = Recorder(delay=0.05)
    worker = hire("w", async_noop, with_gossips(rec))
    worker._config = worker.config().replace(gossip_capacity=10)
    r = worker.work_sync(500, 1)
    assert r.counts.succeeded == 500
    assert r.lag.percentile(99) < 50_000
    assert r.gossip_dropped > 0
    assert r.gossip_dropped + len(rec.seen) == 2 * 500
    assert rec.stops == 1
    assert any("listener" in w for w in warnings(r))


def test_concurrent_work_raises_worker_busy():
    worker = hire("busy", async_noop)

    async def main():
        first = asyncio.create_task(worker.work(50, 0.5))
        await asyncio.sleep(0.05)
        assert worker.busy
        with pytest.raises(pf.WorkerBusy):
            await worker.work(50, 0.5)
        return await first

    report = asyncio.run(main())
    assert report.counts.succeeded == 25
    assert not worker.busy
    # A worker can work again once done.
    assert worker.work_sync(10, 0.5).counts.succeeded == 5


def test_stop_ends_an_open_ended_run_and_still_reports():
    worker = hire("open", async_noop)

    async def main():
        task = asyncio.create_task(worker.work(100))
        await asyncio.sleep(0.55)
        worker.stop()
        return await task

    r = asyncio.run(main())
    assert r.stopped_early and balanced(r)
    assert 40 <= r.counts.scheduled <= 70


def test_stage_profile_slot_count_matches_its_integral():
    profile = pf.parse_stages("0.5s:0-400,0.5s:400,0.25s:400-0")
    expected = 100 + 200 + 50
    r = hire("stages", async_noop, with_profile(profile)).work_sync()
    assert abs(r.counts.scheduled - expected) <= 1 and balanced(r)
    assert r.requested_rps == pytest.approx(expected / 1.25, rel=0.01)


def test_hire_and_work_validate_their_input():
    with pytest.raises(pf.MissingTarget):
        hire("x", None)
    with pytest.raises(pf.MissingTarget):
        hire("x", 42)
    with pytest.raises(pf.InvalidOvertime):
        with_overtime(-1)
    with pytest.raises(pf.InvalidRPS):
        pf.work(0, 1, async_noop)
    with pytest.raises(pf.InvalidRPS):
        pf.work(-5, 1, async_noop)
    with pytest.raises(pf.InvalidOption):
        pf.work(5, -1, async_noop)
    with pytest.raises(pf.InvalidOption):
        with_timeout(0)
    err = pf.InvalidRPS("must be positive")
    assert str(err) == "invalid rps: must be positive" and isinstance(err, pf.PusherError)


def test_config_is_a_public_copy_and_str_is_the_ident():
    w = hire("alice", async_noop, with_overtime(7), with_timeout(2))
    c = w.config()
    assert (w.ident, c.overtime, c.timeout, w.busy) == ("alice", 7, 2.0, False)
    assert str(w) == "alice"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.overtime = 8  # a read-only record: change it with replace(), which checks again
    assert c.replace(overtime=8).overtime == 8 and c.overtime == 7
    with pytest.raises(pf.InvalidOvertime):
        c.replace(overtime=-1)


def test_farm_runs_workers_in_parallel_and_merges():
    workers = [hire(f"w{i}", async_noop, with_overtime(5)) for i in range(3)]
    r = pf.farm(100, 0.5, workers, processes=False)
    assert r.counts.succeeded == 150 and balanced(r)
    assert r.overtime == 5  # per worker, as on the farm path: not a sum
    assert [w.counts.succeeded for w in r.workers] == [50, 50, 50]


def test_python_farm_refuses_a_lambda_clearly():
    with pytest.raises(pf.MissingTarget, match="lambda"):
        pf.farm(10, 1, [pf.hire("x", lambda ctx: None)])


def test_farm_first_error_cancels_all_and_is_raised_as_itself():
    calls = []

    async def counted(ctx):
        calls.append(ctx.seq)
        await asyncio.sleep(0.2)  # still in flight when the other worker fails

    steady = hire("steady", counted)
    failing = hire("failing", async_noop, with_profile(pf.Constant(5, 1)))  # rps and a profile: an error
    with pytest.raises(pf.InvalidOption, match="not both"):  # itself, not an ExceptionGroup
        pf.farm(100, 10, [steady, failing], processes=False)
    # The error cancelled the steady worker at once: far fewer than its 1,000 slots ran,
    # and it is free to work again.
    assert len(calls) < 100 and not steady.busy
    assert steady.work_sync(10, 0.2).counts.succeeded == 2


def test_force_runs_amount_identical_workers():
    r = pf.force(80, 0.5, async_noop, processes=False)(3)
    assert r.counts.succeeded == 120 and len(r.workers) == 3
    assert r.requested_rps == 240


def test_blocking_call_inside_a_running_loop_says_what_to_do():
    async def main():
        with pytest.raises(RuntimeError, match="await"):
            pf.work(10, 0.1, async_noop)

    asyncio.run(main())
