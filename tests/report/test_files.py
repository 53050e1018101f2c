"""The report's CSV series and its HDR interval log, read back with the hdrhistogram package."""

import csv
import json

import pytest
from farm_cli import farm, usage_error
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader


@pytest.mark.slow
def test_a_ten_window_run_logs_ten_histograms_that_add_up_to_the_total(tmp_path):
    out, log, series = tmp_path / "r.json", tmp_path / "run.hlog", tmp_path / "series.csv"
    p = farm("run", "sleep", "--param", "ms=1", "--rps", "300", "-d", "2s", "--window", "200ms", "-p", "2", "--json",
             str(out), "--hdr-log", str(log), "--csv", str(series), "-q", timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    reader = HistogramLogReader(str(log), HdrHistogram(1, 3600 * 10**6, 3))
    intervals = []
    while (h := reader.get_next_interval_histogram()) is not None:
        intervals.append(h)
    assert len(intervals) == 10 == len(d["series"])
    total = HdrHistogram.decode(d["histograms"]["latency"])
    summed = HdrHistogram(1, 3600 * 10**6, 3)
    for h in intervals:
        summed.add(h)
    assert summed.get_total_count() == total.get_total_count() == d["counts"]["succeeded"] + d["counts"]["failed"]
    assert list(summed.counts) == list(total.counts)
    rows = list(csv.DictReader(series.open()))
    assert [float(r["t"]) for r in rows] == pytest.approx([i * 0.2 for i in range(10)])
    assert sum(int(r["started"]) for r in rows) == d["counts"]["scheduled"] - d["counts"]["canceled"]


def test_a_report_file_in_a_missing_folder_is_refused_before_any_load(tmp_path):
    line = usage_error("run", "noop", "--rps", "10", "-d", "1s", "--hdr-log", str(tmp_path / "no" / "x.hlog"))
    assert "--hdr-log" in line and "does not exist" in line


@pytest.mark.slow
def test_the_manifest_says_what_ran_where_and_how(tmp_path):
    out = tmp_path / "r.json"
    p = farm("run", "noop", "--rps", "100", "-d", "1s", "-p", "2", "--overtime", "77", "--json", str(out), "-q")
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    m = d["manifest"]
    assert m["protocol"] == 6 and m["python"] and m["dependencies"]["pyzmq"] and m["pusher_farm"]
    assert m["command"][:3] == ["farm", "run", "noop"] and "--overtime" in m["command"]
    plan = m["plan"][0]
    assert plan["overtime"] == 77 and plan["profile"] == [[1.0, 100.0, 100.0]] and plan["farm"]["on_agent_loss"]
    assert m["hosts"] and m["cpus"] >= 1
    for a in d["agents"]:
        assert a["python"] == m["python"] and a["dependencies"]["msgpack"] == m["dependencies"]["msgpack"]
        assert a["cpus"] >= 1
