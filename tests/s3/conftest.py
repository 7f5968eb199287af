"""Fixtures for the object store: one ``moto_server`` per session, and per test a fresh bucket
reached through a :class:`FaultProxy` (to count requests and inject throttling or denial)."""
from __future__ import annotations

import uuid

import pytest

from api.core import artifacts
from curation.s3 import LocalCache, S3Storage, make_client
from tests.s3.servers import FaultProxy, MotoServer


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials for the test server (any non-empty pair), never the developer's own."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy(moto_server):
    fault_proxy = FaultProxy((moto_server.host, moto_server.port))
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def bucket(aws_env, moto_server):
    """A fresh, empty bucket on the server; its name."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    make_client(moto_server.url, "us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(bucket, proxy, tmp_path) -> S3Storage:
    """An :class:`S3Storage` on the fresh bucket, through the proxy, under the prefix ``svc``."""
    return S3Storage(bucket, "svc", client=make_client(proxy.url, "us-east-1"),
                     cache=LocalCache(tmp_path / "cache", 1 << 30), scratch=tmp_path / "scratch")


@pytest.fixture
def service_on_s3(settings, bucket, proxy, tmp_path):
    """The service's artifact store is the bucket (through the proxy); ``ARTIFACT_ROOT`` stays
    where ``artifact_root`` put it, so a test can check nothing lands there."""
    settings.ARTIFACT_URL = f"s3://{bucket}/deployment"
    settings.S3_ENDPOINT_URL = proxy.url
    settings.S3_REGION = "us-east-1"
    settings.ARTIFACT_CACHE_DIR = tmp_path / "artifact-cache"
    artifacts._object_store.cache_clear()
    yield bucket
    artifacts._object_store.cache_clear()
