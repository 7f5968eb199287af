"""Faults under real processes: a Celery worker (``tests.workers.fault_app``: the real
tasks, each unit announcing itself and lingering a moment) on a Redis of the test's own,
PostgreSQL reached through a TCP proxy the test controls.

Each fault lands while a unit is in flight: Redis restarted, Redis killed, PostgreSQL
unreachable for 20 s, the worker SIGKILLed. Each job must then complete by itself within
a bound, every unit recorded exactly once (JobUnit rows), with the same results as a
clean run of the same job (in this process, no broker, no fault).
"""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from api.datasets.services import dataset_create
from api.jobs import dispatch, services
from api.jobs.models import Job, JobUnit
from api.settings import BASE_DIR, celery_broker_url, visibility_timeout
from curation.demo_data import demo_corpus
from curation.ingest import FieldMapping
from tests.api.helpers import jsonl
from tests.workers.test_schedules_beat import _wait
from tests.workers.test_worker_integration import _database_url, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DOCUMENTS, SHARD_SIZE = 60, 10  # 6 embedding units, then the summary
UNIT_SECONDS = 0.3  # each unit lingers this long before it runs (fault_app), the one a fault hits longer
TIME_LIMIT = 20  # the workers' hard unit time limit: their visibility timeout follows from it
SIGKILL_TIME_LIMIT = 10  # the time limit of the SIGKILL scenario (units of 5 s at most): its wait follows from it
RETRY_DELAY_MAX = 2  # the workers' longest wait between retries of a unit
UNSTABLE_RESULT_KEYS = {"dataset", "embedding_seconds", "documents_per_second", "shards_reused_from_cache"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of this test's own on a free port, persisting every write (AOF, fsync
    always) as a production broker would, so a restart or a kill loses no message."""

    def __init__(self, directory: Path):
        self.directory, self.port = directory, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                   "--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(command, stdout=open(self.directory / "redis.log", "ab"),
                                        stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        _wait(lambda: self._pings(client), 10, "redis-server to answer")

    @staticmethod
    def _pings(client) -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def restart(self) -> None:
        """A graceful restart: SHUTDOWN (clients are disconnected, the AOF flushed), start again."""
        try:
            redis.Redis(port=self.port).shutdown()
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        self.process.wait(timeout=10)
        self.start()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


class TcpProxy:
    """Forwards ``host``:``port`` to ``target``. ``cut()`` drops every open connection and
    closes each new one at once (the database is unreachable) until ``restore()``."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1"):
        self.target = target
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        self.up = False
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._drop(sock)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _postgres_url_through(port: int) -> str:
    settings = connection.settings_dict
    auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    return f"postgres://{auth}@127.0.0.1:{port}/{settings['NAME']}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Faults:
    """One scenario's processes and data: its Redis, its workers, the job's corpus and the
    results of a clean run of the same job."""

    tenant: object
    redis: RedisServer
    artifact_root: Path
    marks: Path
    tmp_path: Path
    workers: list[subprocess.Popen]
    database_url: str = ""

    def start_worker(self, *, lingers: float = UNIT_SECONDS, time_limit: int = TIME_LIMIT) -> subprocess.Popen:
        """A worker (concurrency 1) whose unit ``embedding[2]``, the first time, lingers ``lingers`` s."""
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        env = {**os.environ, "REDIS_URL": self.redis.url, "DATABASE_URL": self.database_url or _database_url(),
               "ARTIFACT_ROOT": str(self.artifact_root), "DJANGO_SETTINGS_MODULE": "api.settings",
               "HF_HUB_OFFLINE": "1", "JOB_SHARD_SOFT_TIME_LIMIT": str(time_limit - 2),
               "JOB_SHARD_TIME_LIMIT": str(time_limit), "JOB_UNIT_RETRY_DELAY_MAX": str(RETRY_DELAY_MAX),
               "CELERY_UNACKED_RESTORE_INTERVAL": "1",
               "FAULT_MARK_DIR": str(self.marks), "FAULT_UNIT_SECONDS": f"{UNIT_SECONDS},embedding-2={lingers}"}
        env.pop("CELERY_VISIBILITY_TIMEOUT", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.workers.fault_app", "worker", "-Q", "cpu,gpu",
             "--concurrency", "1", "--loglevel", "INFO", "--hostname", f"fault-{log.stem}@%h"],
            env=env, cwd=BASE_DIR, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(process)
        return process

    def corpus(self):
        return dataset_create(tenant=self.tenant, kind="corpus",
                              upload=SimpleUploadedFile("c.jsonl", jsonl(demo_corpus(DOCUMENTS, seed=5))),
                              mapping=FieldMapping(), shard_size=SHARD_SIZE)

    def start_job(self) -> Job:
        return services.job_create(tenant=self.tenant, kind="embed",
                                   params={"corpus": str(self.corpus().pk), "embedder": "hashing"})

    def wait_for_unit(self, stage: str, index: int, timeout: float = 120) -> Path:
        """The marker of a unit that has started (the first worker also has to boot)."""
        return _wait(lambda: next(iter(sorted(self.marks.glob(f"{stage}-{index}-*"))), None), timeout,
                     f"unit {stage}[{index}] to start")

    def release_once_reconnected(self, worker: subprocess.Popen, unit: str, timeout: float = 15) -> None:
        """Wait for the worker to have connected to its broker again (a second "Connected to"
        in its log: the first was at boot), then let the lingering ``unit`` go on."""
        log = self.tmp_path / f"worker-{self.workers.index(worker)}.log"
        connected = f"@127.0.0.1:{self.redis.port}/"  # "Connected to redis://:**@127.0.0.1:<port>/0"
        _wait(lambda: sum(connected in line for line in log.read_text(errors="replace").splitlines()
                          if "Connected to " in line) >= 2, timeout, "the worker to reconnect to its broker")
        (self.marks / f"release-{unit}").touch()

    def wait_until_finished(self, job: Job, timeout: float) -> Job:
        def finished():
            current = Job.unscoped_objects.get(pk=job.pk)
            return current if current.status not in Job.ACTIVE else None

        try:
            return _wait(finished, timeout, "the job to finish")
        except AssertionError:
            current = Job.unscoped_objects.get(pk=job.pk)
            raise AssertionError(f"the job did not finish within {timeout:.0f} s: {current.status}/{current.stage} "
                                 f"{current.shards_done}/{current.shards_total} error={current.error!r}") from None

    def results(self, job: Job) -> dict:
        """What must not depend on faults: the result (less timings and cache accounting) and
        the bytes of every shard's embeddings."""
        corpus = job.params["corpus"]
        result = {k: v for k, v in job.result.items() if k not in UNSTABLE_RESULT_KEYS}
        files = sorted(self.artifact_root.rglob(f"{corpus}/embeddings/{job.result['embedder_key']}/shard-*.npy"))
        return {"result": result, "embeddings": {f.name: _digest(f) for f in files}}

    def clean_run(self) -> dict:
        """The same job run in this process, unit after unit, with no broker and no fault."""
        queued: list[dict] = []
        with mock.patch.object(dispatch, "enqueue_units", lambda **kw: queued.append(kw)):
            job = self.start_job()
            while queued:
                call = queued.pop(0)
                for index in call["indices"]:
                    services.job_run_unit(job_id=call["job_id"], stage=call["stage"], index=index)
        job.refresh_from_db()
        assert job.status == "succeeded", job.error
        return self.results(job)

    def assert_completed_cleanly(self, job: Job, reference: dict) -> None:
        assert job.status == "succeeded", job.error
        recorded = sorted(JobUnit.unscoped_objects.filter(job=job).values_list("stage", "index"))
        expected = sorted([("embedding", i) for i in range(DOCUMENTS // SHARD_SIZE)] + [("summary", 0)])
        assert recorded == expected, "every unit recorded exactly once"
        assert job.shards_done == len(expected)
        assert self.results(job) == reference
        assert not list(self.artifact_root.rglob("*.tmp")), "no temp files left behind"


def _reset_connections(app) -> None:
    """Forget the app's broker connections, so the next publish connects to ``broker_url``."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def faults(transactional_db, make_tenant, artifact_root, tmp_path):
    from api.core.queue import app

    tenant, _ = make_tenant("faults")
    (tmp_path / "redis").mkdir()
    (tmp_path / "marks").mkdir()
    server = RedisServer(tmp_path / "redis")
    previous = app.conf.broker_url
    app.conf.broker_url = celery_broker_url(server.url)
    _reset_connections(app)
    scenario = Faults(tenant=tenant, redis=server, artifact_root=artifact_root, marks=tmp_path / "marks",
                      tmp_path=tmp_path, workers=[])
    try:
        yield scenario
    finally:
        for process in scenario.workers:
            stop_process(process)
        server.close()
        app.conf.broker_url = previous
        _reset_connections(app)
        for log in sorted(tmp_path.glob("worker-*.log")):
            print(f"--- {log.name} ---\n" + log.read_text(errors="replace")[-6000:])


def _assert_alive(process: subprocess.Popen) -> None:
    assert process.poll() is None, f"the worker exited with {process.returncode}"


@pytest.mark.parametrize("fault", ["restarted", "killed for 5 s"])
def test_redis_fault_mid_unit(faults, fault):
    """The worker rides out its broker going away while it holds a unit: it reconnects
    while the unit still runs, acknowledges it afterwards, and finishes the job."""
    reference = faults.clean_run()
    worker = faults.start_worker(lingers=15)  # at most: until the reconnection, within the soft time limit
    job = faults.start_job()
    faults.wait_for_unit("embedding", 2)
    if fault == "restarted":
        faults.redis.restart()
    else:
        faults.redis.kill()
        time.sleep(5)
        faults.redis.start()
    faults.release_once_reconnected(worker, "embedding-2")  # the unit ends only after the reconnection
    job = faults.wait_until_finished(job, timeout=60)
    _assert_alive(worker)
    faults.assert_completed_cleanly(job, reference)


def test_postgres_unreachable_for_20_s_mid_unit(faults):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...): the outage is a TCP proxy in front of it; "
                    "CI runs it")
    settings = connection.settings_dict
    proxy = TcpProxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)))
    try:
        faults.database_url = _postgres_url_through(proxy.port)
        reference = faults.clean_run()
        worker = faults.start_worker(lingers=2)  # the unit reaches the database during the outage
        job = faults.start_job()
        faults.wait_for_unit("embedding", 2)
        proxy.cut()
        time.sleep(20)
        proxy.restore()
        job = faults.wait_until_finished(job, timeout=60)
        _assert_alive(worker)
        faults.assert_completed_cleanly(job, reference)
    finally:
        proxy.close()


def test_worker_sigkilled_mid_unit(faults):
    reference = faults.clean_run()
    first = faults.start_worker(lingers=5, time_limit=SIGKILL_TIME_LIMIT)
    job = faults.start_job()
    faults.wait_for_unit("embedding", 2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    faults.start_worker(time_limit=SIGKILL_TIME_LIMIT)
    # the killed unit is delivered again once its visibility timeout, derived from the time limit, has passed
    timeout = visibility_timeout(unit_time_limit=SIGKILL_TIME_LIMIT, retry_delay_max=RETRY_DELAY_MAX)
    job = faults.wait_until_finished(job, timeout=timeout + 20)
    faults.assert_completed_cleanly(job, reference)
