"""A real headless Chromium, driven over the DevTools protocol: load a page, collect its
errors, read its DOM once scripts ran. Tests skip with a reason where Chromium is missing."""

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


async def _inspect(port: int, url: str, expression: str, settle: float) -> tuple[list[str], object]:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as r:
            target = json.loads(await r.text())
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1000))
            errors: list[str] = []
            results: dict[int, dict] = {}
            loaded = asyncio.Event()

            async def reader():
                async for msg in ws:
                    data = json.loads(msg.data)
                    method = data.get("method")
                    if "id" in data:
                        results[data["id"]] = data
                    elif method == "Runtime.exceptionThrown":
                        errors.append(json.dumps(data["params"]["exceptionDetails"])[:500])
                    elif method == "Runtime.consoleAPICalled" and data["params"]["type"] == "error":
                        errors.append(json.dumps(data["params"]["args"])[:500])
                    elif method == "Log.entryAdded" and data["params"]["entry"]["level"] == "error":
                        errors.append(data["params"]["entry"]["text"][:500])
                    elif method == "Page.loadEventFired":
                        loaded.set()

            task = asyncio.create_task(reader())

            async def call(method, **params):
                i = next(ids)
                await ws.send_json({"id": i, "method": method, "params": params})
                for _ in range(500):
                    if i in results:
                        return results.pop(i)
                    await asyncio.sleep(0.01)
                raise TimeoutError(method)

            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                await call(domain)
            await call("Page.navigate", url=url)
            await asyncio.wait_for(loaded.wait(), 20)
            await asyncio.sleep(settle)
            value = (await call("Runtime.evaluate", expression=expression, returnByValue=True))["result"]["result"]
            task.cancel()
            return errors, value.get("value")


def inspect(url: str, expression: str, tmp: Path, settle: float = 0.5) -> tuple[list[str], object]:
    """(errors the page logged or threw, the value of ``expression`` once it loaded)."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp))  # a fresh one: no stale DevTools port
    proc = subprocess.Popen(
        [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        return asyncio.run(_inspect(port, url, expression, settle))
    finally:
        proc.terminate()
        proc.wait(10)
