"""`manage.py serve` starts Redis, a Celery worker, beat and the web server; SIGINT (Ctrl-C)
stops all of them, leaving no orphan process and no temporary directory. A dead worker is
restarted; a second stack on the same state refuses to start; stacks of different databases
have different states."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from api.core.embedded import SOCKET_PATH_MAX
from api.settings import BASE_DIR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(tmp_path, port: int, name: str = "serve", **env_extra) -> subprocess.Popen:
    """``manage.py serve`` in its own environment, logging to ``tmp_path/<name>.log``; started
    with SIGINT ignored, as a background job of a script is: Ctrl-C must still stop it."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(VAR_DIR=str(tmp_path / "var"), ARTIFACT_ROOT=str(tmp_path / "artifacts"), HF_HUB_OFFLINE="1",
               **env_extra)
    return subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--concurrency", "1"],
                            cwd=BASE_DIR, env=env, stdout=open(tmp_path / f"{name}.log", "wb"),
                            stderr=subprocess.STDOUT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def _wait_for_web(port: int, log) -> requests.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            return requests.get(f"http://127.0.0.1:{port}/api/v1/usage/", timeout=2)
        except requests.ConnectionError:
            time.sleep(0.5)
    raise AssertionError("the web server never answered:\n" + log.read_text())


def _wait_for_line(log, pattern: str, timeout: float = 30) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if match := re.search(pattern, log.read_text()):
            return match
        time.sleep(0.25)
    raise AssertionError(f"no line matching {pattern!r} within {timeout:.0f} s:\n" + log.read_text()[-3000:])


def test_serve_starts_the_stack_and_ctrl_c_stops_everything(tmp_path):
    port = _free_port()
    server = _serve(tmp_path, port)
    started: list[psutil.Process] = []
    try:
        response = _wait_for_web(port, tmp_path / "serve.log")
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
        assert requests.get(f"http://127.0.0.1:{port}/api/docs/", timeout=5).status_code == 200

        redis = re.search(r"embedded Redis pid (\d+) on (\S+)", (tmp_path / "serve.log").read_text())
        socket_dir = Path(redis.group(2)).parent
        started += psutil.Process(server.pid).children(recursive=True)
        assert int(redis.group(1)) in [p.pid for p in started]
        commands = [" ".join(process.cmdline()) for process in started]
        assert any("redis-server" in c for c in commands), commands
        assert any("celery" in c and "worker" in c for c in commands), commands

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=90) == 0  # beat and worker get 20 s each of warm shutdown
        gone, alive = psutil.wait_procs(started, timeout=2)  # stop waited for them
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/api/v1/usage/", timeout=2)
        state = next((tmp_path / "var" / "stacks").iterdir())
        assert not (state / "stack.pid").exists() and (state / "log" / "worker.log").is_file()
        # pytest's tmp_path makes the state's socket path too long for a unix socket, so Redis
        # had a short temporary directory of its own: stop removed it
        assert len(str(state / "redis" / "redis.sock")) > SOCKET_PATH_MAX and socket_dir.parent != state
        assert not socket_dir.exists(), "the temporary directory is removed"
    finally:
        if server.poll() is None:
            server.kill()
        for process in started:
            if process.is_running():
                process.kill()
        print((tmp_path / "serve.log").read_text()[-3000:])


def test_a_dead_worker_is_restarted_and_a_second_stack_on_the_same_state_refuses(tmp_path):
    port = _free_port()
    first = _serve(tmp_path, port, "first")
    log = tmp_path / "first.log"
    other = None
    try:
        _wait_for_web(port, log)
        state = Path(_wait_for_line(log, r"embedded stack pid \d+, state (\S+)").group(1))

        second = _serve(tmp_path, _free_port(), "second")
        assert second.wait(timeout=60) != 0
        refusal = (tmp_path / "second.log").read_text()
        assert f"another embedded stack (pid {first.pid}) is running on the state directory {state}" in refusal

        other = _serve(tmp_path, _free_port(), "other", DATABASE_URL=f"sqlite:///{tmp_path / 'other.sqlite3'}")
        other_state = Path(_wait_for_line(tmp_path / "other.log", r"embedded stack pid \d+, state (\S+)",
                                          timeout=60).group(1))
        assert other_state != state and other_state.parent == state.parent
        other.send_signal(signal.SIGINT)
        assert other.wait(timeout=90) == 0

        worker = int(_wait_for_line(log, r"Celery worker pid (\d+)").group(1))
        os.killpg(worker, signal.SIGKILL)
        restarted = int(_wait_for_line(log, r"restarted Celery worker: pid (\d+)").group(1))
        assert restarted != worker and psutil.pid_exists(restarted)
        assert f"Celery worker (pid {worker}) exited with -9; restarting it in 1 s" in log.read_text()
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/usage/", timeout=5).status_code == 401
        started = psutil.Process(first.pid).children(recursive=True)

        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=90) == 0
        _, alive = psutil.wait_procs(started, timeout=2)  # stop waited for them
        assert alive == [], [" ".join(p.cmdline()) for p in alive]
    finally:
        for process in (first, other):
            if process is not None and process.poll() is None:
                process.kill()
        print(log.read_text()[-3000:])
