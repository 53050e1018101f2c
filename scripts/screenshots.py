#!/usr/bin/env python
"""Screenshots of the HTML report, of a comparison of two runs and of the live page, from real
runs on this host (headless Chromium). Usage: python scripts/screenshots.py [--out DIR]
(default bench-results/)"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FARM = [sys.executable, "-m", "pusher_farm"]


def shoot(page: Path | str, png: Path, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    url = page if isinstance(page, str) else page.as_uri()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size=1240,{height}", f"--screenshot={png}", url],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    print(f"wrote {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-results")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        runs = {
            "ramp": ["sleep", "--param", "ms=2", "--stages", "3s:100-800,4s:800,2s:800-200", "-p", "2"],
            "steady": ["sleep", "--param", "ms=3", "--rps", "500", "-d", "9s", "-p", "2"],
        }
        for name, args in runs.items():
            subprocess.run([*FARM, "run", *args, "--json", str(t / f"{name}.json"), "-q"], check=True,
                           capture_output=True, timeout=300)  # fmt: skip
        subprocess.run([*FARM, "report", str(t / "ramp.json"), "--html", str(out / "report.html")], check=True)
        subprocess.run([*FARM, "report", str(t / "ramp.json"), str(t / "steady.json"), "--html",
                        str(out / "compare.html")], check=True)  # fmt: skip
    shoot(out / "report.html", out / "report.png", 1250)
    shoot(out / "compare.html", out / "compare.png", 1150)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["sleep", "--param", "ms=2", "--stages", "4s:100-600,8s:600", "-p", "2", "--http", f"127.0.0.1:{port}"]
    live = subprocess.Popen([*FARM, "run", *args, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(7)
        shoot(f"http://127.0.0.1:{port}/", out / "live.png", 1000)
    finally:
        live.wait(60)


if __name__ == "__main__":
    main()
