"""Data-driven HTTP: each call's URL, header and body filled from its work item, on both engines."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from farm_cli import FARM, usage_error

from pusher_farm.errors import InvalidOption
from pusher_farm.items.item import Work
from pusher_farm.targets.http_template import RequestTemplate


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.path, self.headers.get("X-User"), body.decode()))
        self.send_response(200 if not self.path.endswith("/missing") else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    seen = []
    handler = type("R", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["lean", "aiohttp"])
def test_each_item_fills_the_url_header_and_body(recorder, tmp_path, engine):
    base, seen = recorder
    items = tmp_path / "users.jsonl"
    rows = [{"id": f"u {i}", "name": f"n{i}", "body": {"x": i}} for i in range(50)]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = subprocess.run(
        [*FARM, "run", "http", "--url", base + "/users/{id}?name={name}", "--method", "POST", "--body", "{body}",
         "--header", "X-User: {name}", "--feed", str(items), "--drain", "--parallel", "4", "-p", "1",
         "--engine", engine, "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    want = sorted(
        (f"/users/u%20{i}?name=n{i}", f"n{i}", json.dumps({"x": i}, separators=(",", ":"))) for i in range(50)
    )
    assert sorted(seen) == want


def test_a_template_refuses_a_host_placeholder_and_fails_a_call_on_a_missing_field():
    with pytest.raises(InvalidOption, match="not the scheme, host or port"):
        RequestTemplate("http://{host}/x", [], None)
    t = RequestTemplate("http://h/a/{id}", [("X", "{who}")], '{"literal": {id}}')
    assert t.fill(Work("7", {"who": "me"})) == ("http://h/a/7", [("X", "me")], b'{"literal": 7}')
    with pytest.raises(Exception, match="Template: no field 'who'"):
        t.fill(Work("7", "plain body"))


def test_placeholders_without_a_feed_are_refused_before_any_load():
    line = usage_error("run", "http", "--url", "http://127.0.0.1:9/users/{id}", "--rps", "1", "-d", "1s")
    assert "placeholders: give a feed" in line
