"""Thresholds on the merged run: parsed where written, judged on the whole farm, exit 99."""

import json
import subprocess
import sys

import pytest

import pusher_farm as pf
from pusher_farm.core.thresholds import EXIT_THRESHOLDS, evaluate, parse_threshold
from pusher_farm.errors import InvalidOption

FARM = [sys.executable, "-m", "pusher_farm"]


@pytest.mark.parametrize(
    "text, metric, value",
    [("p99<250ms", "p99", 250.0), ("p99.9 <= 2s", "p99.9", 2000.0), ("service.p50<500us", "service.p50", 0.5),
     ("error_rate<1%", "error_rate", 0.01), ("cancel_rate<=0.05", "cancel_rate", 0.05), ("failed==0", "failed", 0.0),
     ("connect.p99<20", "connect.p99", 20.0), ("achieved_rps>=0.99*requested", "achieved_rps", 0.99)],
)  # fmt: skip
def test_thresholds_read_their_metric_and_value(text, metric, value):
    t = parse_threshold(text)
    assert (t.metric, t.value) == (metric, value)


@pytest.mark.parametrize(
    "text, message",
    [("p99 250", "write METRIC OP VALUE"), ("bogus<1", "unknown metric 'bogus'"), ("p99<1%", "% is for rates"),
     ("error_rate<3ms", "ms is for times"), ("p99<0.5*requested", "only achieved_rps and throughput_rps")],
)  # fmt: skip
def test_a_bad_threshold_is_refused_where_written(text, message):
    with pytest.raises(InvalidOption, match=message):
        pf.hire("w", pf.inline(lambda ctx: None), lambda c: c.replace(thresholds=(text,)))


def test_a_run_is_judged_on_its_numbers_and_a_failure_sets_the_status():
    w = pf.hire("w", pf.inline(lambda ctx: None), lambda c: c.replace(thresholds=("failed==0", "p99<0.0001ms")))
    report = w.work_sync(200, 0.5)
    verdicts = {t["threshold"]: t["ok"] for t in report.thresholds}
    assert verdicts == {"failed==0": True, "p99<0.0001ms": False} and report.status == EXIT_THRESHOLDS
    # a phase that never happened cannot pass
    assert not evaluate([parse_threshold("connect.p99<1s")], report)[0].ok


def test_the_command_line_exits_99_on_a_failed_threshold_and_0_when_all_pass(tmp_path):
    out = tmp_path / "r.json"
    base = [*FARM, "run", "noop", "--rps", "200", "-d", "1s", "-p", "2", "--json", str(out), "-q"]
    p = subprocess.run([*base, "--threshold", "error_rate<1%", "--threshold", "scheduled==200"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert [t["ok"] for t in json.loads(out.read_text())["thresholds"]] == [True, True]
    p = subprocess.run([*base, "--threshold", "max<0.0001ms"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 99
    d = json.loads(out.read_text())
    assert d["thresholds"][0]["ok"] is False and d["status"] == 99
    assert any(w.startswith("threshold max<0.0001ms failed: measured") for w in d["warnings"])


def test_abort_on_fail_stops_the_run_within_two_windows(tmp_path):
    out = tmp_path / "r.json"
    p = subprocess.run(
        [*FARM, "run", "sleep", "--param", "ms=5", "--rps", "100", "-d", "30s", "-p", "1", "--threshold", "p99<1ms",
         "--abort-on-fail", "--json", str(out), "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 99, p.stderr
    d = json.loads(out.read_text())
    # the first window fails it and the run stops right after (CI machines may lag a window or two)
    assert d["stopped_early"] and len(d["series"]) < 10
    assert any("threshold p99<1ms failed (--abort-on-fail)" in n for n in d["warnings"])


def test_abort_on_fail_needs_a_threshold():
    p = subprocess.run([*FARM, "run", "noop", "--rps", "10", "-d", "1s", "--abort-on-fail"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and "abort_on_fail needs a threshold to check (--threshold" in p.stderr


def test_abort_on_fail_leaves_counts_and_rates_to_the_end():
    """A count can only grow: 'succeeded>=500' is not failed by the first windows of a run that
    will get there."""
    p = subprocess.run(
        [*FARM, "run", "noop", "--rps", "300", "-d", "3s", "-p", "1", "--threshold", "succeeded>=800",
         "--threshold", "achieved_rps>=0.9*requested", "--abort-on-fail", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
