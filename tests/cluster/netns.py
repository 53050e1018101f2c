"""Test hosts in network namespaces joined by a bridge (needs root and iproute2).

Hosts get 10.231.0.N/24 inside namespaces this module creates and deletes; nothing is routed
outside them. ``Lab.link(host, up)`` takes a host's cable out and puts it back.
"""

import os
import shutil
import subprocess
import uuid

SUBNET = "10.231.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class Lab:
    def __init__(self, hosts: list[str]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.switch = f"pfsw-{tag}"
        self.ns = {h: f"pf{h}-{tag}" for h in hosts}
        self.addr = {h: f"{SUBNET}.{i + 1}" for i, h in enumerate(hosts)}
        self._made: list[str] = []

    @staticmethod
    def unavailable() -> str | None:
        """Why this machine cannot make a lab, or None when it can."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "iproute2's ip command is missing"
        probe = f"pfprobe-{uuid.uuid4().hex[:6]}"
        try:
            _ip("netns", "add", probe)
            _ip("netns", "del", probe)
        except (subprocess.CalledProcessError, OSError) as exc:
            return f"ip netns does not work here: {getattr(exc, 'stderr', exc)}".strip()
        return None

    def __enter__(self):
        try:
            _ip("netns", "add", self.switch)
            self._made.append(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for host, ns in self.ns.items():
                _ip("netns", "add", ns)
                self._made.append(ns)
                _ip(
                    "link",
                    "add",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    f"v-{host}",
                    "netns",
                    self.switch,
                )
                _ip("-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", self.switch, "link", "set", f"v-{host}", "master", "br0")
                _ip("-n", self.switch, "link", "set", f"v-{host}", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self._made.clear()

    def popen(self, host: str, args: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns[host], *args], **kw)

    def link(self, host: str, up: bool) -> None:
        _ip("-n", self.switch, "link", "set", f"v-{host}", "up" if up else "down")
