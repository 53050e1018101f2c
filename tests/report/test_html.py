"""The HTML report in a real headless browser: no console errors, every chart drawn."""

import subprocess

import pytest
from browser import chromium, inspect
from farm_cli import FARM, usage_error

CHARTS = """JSON.stringify({
  charts: document.body.getAttribute("data-charts"),
  canvases: [...document.querySelectorAll(".uplot canvas")].filter(c => c.width > 0 && c.height > 0).length,
  rows: document.querySelectorAll("table tr").length,
  title: document.title })"""

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs Debian's)")


def run(tmp_path, name, *args):
    out = tmp_path / f"{name}.json"
    p = subprocess.run([*FARM, "run", *args, "-p", "2", "--json", str(out), "-q"], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.slow
def test_a_report_and_a_comparison_open_without_errors_with_their_charts_drawn(tmp_path):
    import json

    a = run(
        tmp_path, "a", "sleep", "--param", "ms=2", "--stages", "1s:50-200,1s:200", "--html", str(tmp_path / "a.html")
    )
    b = run(tmp_path, "b", "noop", "--rps", "200", "-d", "1s")
    size = (tmp_path / "a.html").stat().st_size
    assert size < 1_000_000  # self-contained and small
    p = subprocess.run([*FARM, "report", str(a), str(b), "--html", str(tmp_path / "ab.html")], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    for page in ("a.html", "ab.html"):
        errors, value = inspect((tmp_path / page).as_uri(), CHARTS, tmp_path)
        assert errors == [], errors
        seen = json.loads(value)
        assert seen["charts"] == "4" and seen["canvases"] == 4 and seen["rows"] > 10, seen
    assert "a vs b" in seen["title"]


def test_farm_report_refuses_what_is_not_a_report(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    assert "not a pusher-farm report" in usage_error(
        "report", str(tmp_path / "x.json"), "--html", str(tmp_path / "o.html")
    )


@pytest.mark.slow
def _windows(port, token):
    """The merged windows a running farm serves (none while it is not up yet)."""
    import json
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}/windows", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return []


def test_the_live_page_draws_its_charts_from_a_running_farm(tmp_path):
    import json
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen(
        [*FARM, "run", "sleep", "--param", "ms=2", "--rps", "200", "-d", "60s", "-p", "2", "--http",
         f"127.0.0.1:{port}", "--http-token", "tok", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_windows(port, "tok")) < 2:  # a few windows in
            time.sleep(0.2)
        errors, value = inspect(
            f"http://127.0.0.1:{port}/#token=tok",
            """JSON.stringify({ charts: document.body.getAttribute("data-charts"),
                 updated: Number(document.body.getAttribute("data-updated") || 0),
                 agents: document.querySelectorAll("#agents tbody tr").length,
                 state: document.getElementById("state").textContent })""",
            tmp_path,
            settle=1.5,
        )
    finally:
        p.send_signal(signal.SIGINT)  # the page was read while it ran; now the run may end
        p.wait(60)
    seen = json.loads(value)
    assert errors == [], errors
    assert seen["charts"] == "3" and seen["updated"] >= 1 and seen["agents"] == 2, seen
    assert seen["state"].startswith("running"), seen
