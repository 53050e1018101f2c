"""``farm demo``: a small HTTP(S) server on 127.0.0.1, loaded (or only served, to try things)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import click

from pusher_farm.cli.common import check_json_path, duration, fail, finish
from pusher_farm.core import loop as _loop

__all__ = ["demo"]


@click.command()
@click.option("--rps", type=float, default=200.0, show_default=True, help="Calls per second.")
@click.option("--duration", "-d", "length", default="5s", show_default=True, help="How long.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("-q", "--quiet", is_flag=True, help="No live progress lines.")
@click.option("--tls", is_flag=True, help="HTTPS, with a self-signed certificate (made with openssl).")
@click.option("--serve", "port", type=int, help="Only serve the demo server on this port of 127.0.0.1, no load.")
@click.option("--for", "serve_for", default="60s", show_default=True, help="With --serve: for how long.")
@click.option(
    "--background", is_flag=True, help="With --serve: serve from a process of its own; return once it answers."
)
def demo(
    rps: float,
    length: str,
    json_path: str | None,
    quiet: bool,
    tls: bool,
    port: int | None,
    serve_for: str,
    background: bool,
) -> None:
    """Start a small HTTP server on 127.0.0.1 and load it: see the whole thing work.

    With --serve it only serves (GET /?ms=2&fail=0.01: a 2 ms answer, 1% answered 503;
    GET /status/N: status N), for trying `farm run http` against it.
    """
    if port is not None:
        if not 0 <= port <= 65535:
            fail(f"--serve {port}: give a port from 0 to 65535")
        seconds = duration(serve_for, "--for")
        if background:
            _serve_in_background(port, tls, serve_for)
            return
        _serve(port, tls, seconds)
        return
    _load(rps, length, json_path, quiet, tls)


def _load(rps: float, length: str, json_path: str | None, quiet: bool, tls: bool) -> None:
    from pusher_farm.core.offers import with_timeout
    from pusher_farm.core.schedule import Constant
    from pusher_farm.core.worker import hire
    from pusher_farm.demo import DemoServer, self_signed
    from pusher_farm.report import progress_line
    from pusher_farm.targets import resolve

    until = duration(length, "--duration")
    profile = Constant(rps, until)
    check_json_path(json_path)
    with DemoServer(tls=self_signed() if tls else None) as server:
        url = server.url + "?ms=2&fail=0.01"
        click.echo(f"demo server on {server.url} (2 ms +-50% per response, 1% answered 503)", err=True)
        verify = " --param verify=false" if tls else ""
        click.echo(f"farm run http --url '{url}'{verify} --rps {profile.rate:g} --duration {until:g}s", err=True)
        fn = resolve("http", {"url": url, "verify": not tls})
        worker = hire("demo", fn, with_timeout(5.0))
        on_window = None if quiet else (lambda w: click.echo(progress_line(w), err=True))
        report = _loop.run(worker.work(profile.rate, until, on_window=on_window))
    finish(report, json_path, quiet)


def _serve(port: int, tls: bool, seconds: float) -> None:
    from pusher_farm.demo import DemoServer, self_signed

    with DemoServer(port=port, tls=self_signed() if tls else None) as server:
        click.echo(f"serving {server.url} for {seconds:g}s", err=True)
        try:
            time.sleep(seconds)
        except KeyboardInterrupt:
            pass


def _serve_in_background(port: int, tls: bool, serve_for: str) -> None:
    if port == 0:
        fail("--background needs a fixed --serve port (others must know where to connect)")
    with socket.socket() as probe:  # a port another server holds would answer for us
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: past TIME_WAIT
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            fail(f"port {port} of 127.0.0.1 is taken: give --serve another port")
    args = [sys.executable, "-m", "pusher_farm", "demo", "--serve", str(port), "--for", serve_for]
    proc = subprocess.Popen(
        [*args, *(["--tls"] if tls else [])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"the demo server could not start on port {port} (is it taken?)")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            time.sleep(0.05)
            continue
        click.echo(f"serving {'https' if tls else 'http'}://127.0.0.1:{port}/ for {serve_for} (pid {proc.pid})")
        return
    proc.kill()
    fail(f"the demo server did not answer on port {port} within 15 s")
