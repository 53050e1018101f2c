"""Work items through a worker in this process: drain mode, retries, callbacks, files, rate mode."""

import json
import threading
import time

import pytest

import pusher_farm as pf
from pusher_farm.core.load import Drain
from pusher_farm.errors import InvalidOption


def retry_twice_every_third(ctx):
    item = ctx.item
    if int(item.id) % 3 == 0 and item.attempts <= 2:
        raise pf.Retry("busy")
    return {"done": item.id}


def items(n):
    return [{"id": i, "body": f"b{i}"} for i in range(n)]


def test_drain_processes_every_item_once_with_exact_retries_and_callbacks(tmp_path):
    results = tmp_path / "results.jsonl"
    seen = {"success": [], "retry": [], "failure": []}
    w = pf.hire(
        "d",
        retry_twice_every_third,
        pf.with_items(
            items(1000),
            parallel=20,
            max_retries=3,
            results=str(results),
            on_success=[seen["success"].append, seen["success"].append],  # several: each once
            on_retry=seen["retry"].append,
            on_failure=seen["failure"].append,
        ),
    )
    r = w.work_sync()
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(int(x["id"]) for x in lines) == list(range(1000))
    third = [x for x in lines if int(x["id"]) % 3 == 0]
    assert len(third) == 334 and all(x["attempts"] == 3 and x["retries"] == ["Retry: busy"] * 2 for x in third)
    assert r.items["by_status"] == {"success": 1000} and r.items["attempts"] == {"1": 666, "3": 334}
    assert r.items["retries"] == 668 and r.errors == {"Retry: busy": 668}
    c = r.counts
    assert c.planned == c.scheduled == 1668 and c.succeeded == 1000 and c.failed == 668 and c.canceled == 0
    assert len(seen["success"]) == 2000 and len(seen["retry"]) == 668 and seen["failure"] == []
    assert r.profile == "drain, 20 parallel"


def test_items_out_of_retries_fail_into_the_dead_letter_file(tmp_path):
    dead = tmp_path / "dead.jsonl"
    failed = []
    w = pf.hire(
        "d",
        retry_twice_every_third,
        pf.with_items(items(30), parallel=4, max_retries=1, dead_letter=str(dead), on_failure=failed.append),
    )
    r = w.work_sync()
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(int(x["id"]) for x in letters) == list(range(0, 30, 3))
    assert all(x["error"] == "Retry: busy" and x["attempts"] == 2 and x["body"].startswith("b") for x in letters)
    assert r.items["by_status"] == {"success": 20, "failure": 10} and len(failed) == 10


def test_a_returned_status_and_other_errors(tmp_path):
    def target(ctx):
        n = int(ctx.item.id)
        return (pf.Status.FAILURE, pf.Status.RETRY, None)[n % 3] if n % 2 else 1 / 0

    r = pf.hire("d", target, pf.with_items(items(12), parallel=3, max_retries=1)).work_sync()
    assert r.errors == {"ZeroDivisionError": 6, "Failure": 2, "Retry": 4}
    assert r.items["by_status"] == {"failure": 10, "success": 2}


def test_a_slow_callback_does_not_stall_the_load_and_still_sees_every_event():
    release = threading.Event()
    got = []

    def slow(item):
        release.wait(10)
        got.append(item.id)

    w = pf.hire("d", pf.inline(lambda ctx: None), pf.with_items(items(200), parallel=5, on_success=slow))
    started = time.monotonic()
    threading.Timer(1.0, release.set).start()
    r = w.work_sync()
    assert r.counts.succeeded == 200 and len(got) == 200 and time.monotonic() - started >= 0.9
    assert sorted(map(int, got)) == list(range(200))


def test_rate_mode_ends_when_the_feed_runs_dry_or_cycles_on():
    w = pf.hire("r", pf.inline(lambda ctx: ctx.item.id), pf.with_items(items(50)))
    r = w.work_sync(200, 1.0)
    # a slot launched with the 50th's batch (4 ms) finds no item: canceled, counted as starved
    c, starved = r.counts, r.items["starved_slots"]
    assert c.succeeded == 50 and c.planned == c.scheduled == 50 + starved and c.canceled == starved <= 1
    assert any("ran dry" in n for n in r.notes) and r.stopped_early
    w = pf.hire("r", pf.inline(lambda ctx: ctx.item.id), pf.with_items(items(50), feed_cycle=True))
    r = w.work_sync(200, 0.5)
    assert r.counts.succeeded == r.counts.planned == 100 and not any("ran dry" in n for n in r.notes)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_retries": -1}, "max_retries must lie in"),
        ({"parallel": "x"}, "parallel must be a whole number"),
        ({"retries": 3}, "with_items has no setting 'retries'"),
        ({"on_success": 5}, "on_success takes functions"),
    ],
)
def test_bad_item_settings_are_refused_where_written(settings, message):
    with pytest.raises(InvalidOption, match=message):
        pf.with_items([1], **settings)


def test_drain_needs_a_feed():
    with pytest.raises(InvalidOption, match="needs a feed"):
        pf.hire("d", lambda ctx: None, lambda c: c.replace(load=Drain.lanes(2))).work_sync()


def test_the_farms_dealer_pauses_while_a_handler_falls_behind():
    from pusher_farm.core.config import Config
    from pusher_farm.items.central import CentralItems

    release = threading.Event()
    central = CentralItems(Config(feed=[{"id": i} for i in range(10)], on_success=(lambda item: release.wait(10),)))
    lane = central.handlers.success[0]
    for _ in range(40_000):  # a callback stuck behind this many events
        lane.put(None)
    central.pace()
    assert central.dealer.paused and central.dealer.deal("a", 5) == []
    release.set()
    deadline = time.monotonic() + 30
    while lane.backlog and time.monotonic() < deadline:
        time.sleep(0.01)
    central.pace()
    assert not central.dealer.paused and len(central.dealer.deal("a", 5)) == 5
    central.close()
