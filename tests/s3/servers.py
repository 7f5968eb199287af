"""A real S3-protocol server for tests (``moto_server`` in its own process) and a proxy in
front of it that counts what clients send and injects the store's failures: throttling
(``503 SlowDown``) and a permanent ``403 AccessDenied``."""
from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                 b'<Message>Access Denied</Message></Error>')


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class MotoServer:
    """``moto_server`` on ``host:port`` in a child process (its own interpreter: no GIL shared
    with the code under test)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log: Path | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, command_prefix: tuple[str, ...] = ()) -> "MotoServer":
        executable = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen([*command_prefix, executable, "-H", self.host, "-p", str(self.port)],
                                        stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start within 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class FaultProxy:
    """An HTTP proxy to ``upstream`` (host, port): ``throttle(n)`` answers the next ``n``
    requests with 503 SlowDown, ``throttle_every(n)`` every ``n``-th, ``deny(True)`` answers every request with 403 AccessDenied;
    ``requests`` counts requests by method and ``bytes_served`` the bytes of GET bodies."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.requests: Counter = Counter()
        self.injected: Counter = Counter()
        self.bytes_served = 0
        self._lock = threading.Lock()
        self._throttle = 0
        self._every = 0
        self._seen = 0
        self._deny = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._fault()
                with proxy._lock:
                    proxy.requests[self.command] += 1
                if fault is not None:
                    status, payload = fault
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", response.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                    if self.command == "GET":
                        with proxy._lock:
                            proxy.bytes_served += len(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _fault(self) -> tuple[int, bytes] | None:
        with self._lock:
            if self._deny:
                self.injected[403] += 1
                return 403, ACCESS_DENIED
            self._seen += 1
            if self._throttle > 0 or (self._every and self._seen % self._every == 0):
                self._throttle = max(0, self._throttle - 1)
                self.injected[503] += 1
                return 503, SLOW_DOWN
        return None

    def throttle(self, requests: int) -> None:
        with self._lock:
            self._throttle = requests

    def throttle_every(self, n: int) -> None:
        """Answer every ``n``-th request with 503 SlowDown from now on (0: stop)."""
        with self._lock:
            self._every, self._seen = n, 0

    def deny(self, on: bool = True) -> None:
        with self._lock:
            self._deny = on

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.injected.clear()
            self.bytes_served = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
