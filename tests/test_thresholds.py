"""Thresholds on the merged run: parsed where written, judged on the whole farm, exit 99. (A
farm's --abort-on-fail is on the simulator, ``tests/cluster/test_farm.py``.)"""

import json

import pytest
from farm_cli import farm, usage_error

import pusher_farm as pf
from pusher_farm.core.thresholds import EXIT_THRESHOLDS, evaluate, parse_threshold
from pusher_farm.errors import InvalidOption


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


@pytest.mark.slow
def test_the_command_line_exits_99_on_a_failed_threshold_and_0_when_all_pass(tmp_path):
    out = tmp_path / "r.json"
    base = ["run", "noop", "--rps", "200", "-d", "1s", "-p", "2", "--json", str(out), "-q"]
    p = farm(*base, "--threshold", "error_rate<1%", "--threshold", "scheduled==200")
    assert p.returncode == 0, p.stderr
    assert [t["ok"] for t in json.loads(out.read_text())["thresholds"]] == [True, True]
    p = farm(*base, "--threshold", "max<0.0001ms")
    assert p.returncode == 99
    d = json.loads(out.read_text())
    assert d["thresholds"][0]["ok"] is False and d["status"] == 99
    assert any(w.startswith("threshold max<0.0001ms failed: measured") for w in d["warnings"])


def test_abort_on_fail_needs_a_threshold():
    assert "abort_on_fail needs a threshold to check (--threshold" in usage_error(
        "run", "noop", "--rps", "10", "-d", "1s", "--abort-on-fail"
    )
