"""Several hosts on one machine: a network namespace per host, joined to a bridge in the root
namespace by a veth pair (``ip netns``, root only). The root namespace plays the shared
services' host: it owns the bridge address (where a ``tests.workers.test_faults.TcpProxy``
exposes a loopback-only service, the machine's PostgreSQL)."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import uuid
from pathlib import Path


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"cur-probe-{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Network:
    """A bridge ``10.<a>.<b>.1/24`` in the root namespace and one namespace per :meth:`add_host`."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"cbr{tag}"
        self.subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 250)}"
        self.gateway = f"{self.subnet}.1"
        self.hosts: dict[str, str] = {}
        self._tag = tag
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def namespace(self, host: str) -> str:
        return f"cur-{self._tag}-{host}"

    def add_host(self, host: str) -> str:
        """A namespace named after ``host`` with its own address on the bridge; the address."""
        ns, address = self.namespace(host), f"{self.subnet}.{10 + len(self.hosts)}"
        inside, outside = f"vh{self._tag}{len(self.hosts)}", f"vb{self._tag}{len(self.hosts)}"
        _ip("netns", "add", ns)
        _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
        _ip("link", "set", inside, "netns", ns)
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        self.hosts[host] = address
        return address

    def run(self, host: str, command: list[str], *, env: dict, log: Path, cwd: Path) -> subprocess.Popen:
        """``command`` on ``host`` (its own process group, output to ``log``)."""
        return subprocess.Popen(["ip", "netns", "exec", self.namespace(host), *command], env=env, cwd=cwd,
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def close(self) -> None:
        for host in self.hosts:
            _ip("netns", "del", self.namespace(host), check=False)  # takes its veth pair along
        _ip("link", "del", self.bridge, check=False)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
