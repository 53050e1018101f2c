import itertools

from aiohttp import web

import pusher_farm as pf
from pusher_farm.demo import DemoServer
from pusher_farm.targets import resolve


def every_fourth_fails() -> web.Application:
    counter = itertools.count()

    async def handler(request):
        n = next(counter)
        if n % 4 == 3:
            return web.Response(status=503, text="busy")
        if n % 4 == 2:
            return web.Response(status=201, text="made")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handler)
    return app


def test_http_target_counts_2xx_and_5xx():
    with DemoServer(app=every_fourth_fails) as server:
        target = resolve("http", {"url": server.url})
        r = pf.work(200, 1, target, pf.with_timeout(5))
    assert r.counts.scheduled == 200
    assert r.counts.succeeded == 150
    assert r.errors == {"HTTP 503": 50}
    assert r.counts.failed == 50
    assert r.target.startswith("http GET http://127.0.0.1:")


def test_http_target_status_and_connection_errors(demo_server):
    r = pf.work(50, 0.5, resolve("http", {"url": demo_server.url + "status/404"}))
    assert r.errors == {"HTTP 404": 25}
    with DemoServer() as gone:
        url = gone.url
    r = pf.work(20, 0.5, resolve("http", {"url": url}), pf.with_timeout(2))
    assert r.counts.failed == 10 and sum(r.errors.values()) == 10
    assert r.errors == {"ConnectRefused": 10}


def test_http_target_sends_method_headers_and_body():
    seen = []

    def app():
        async def handler(request):
            seen.append((request.method, request.headers.get("X-Test"), await request.text()))
            return web.Response(text="ok")

        a = web.Application()
        a.router.add_route("*", "/", handler)
        return a

    with DemoServer(app=app) as server:
        target = resolve("http", {"url": server.url, "method": "post", "headers": ["X-Test: yes"], "body": "hi"})
        r = pf.work(10, 0.5, target)
    assert r.counts.succeeded == 5
    assert seen[0] == ("POST", "yes", "hi")
