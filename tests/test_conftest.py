"""The suite's own fixtures: a session drops the PostgreSQL test database it created, even
when a process that outlived its test is still connected to it."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from django.db import connection

from api.settings import BASE_DIR


def _databases(cursor) -> set[str]:
    cursor.execute("SELECT datname FROM pg_database")
    return {row[0] for row in cursor.fetchall()}


@pytest.mark.timeout(120)
def test_a_session_drops_its_test_database_even_with_a_straggler_connected(db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...): a SQLite test database is a file; CI runs it")
    settings = connection.settings_dict
    name = f"straggler_{uuid.uuid4().hex[:8]}"
    auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["DATABASE_URL"] = f"postgres://{auth}@{settings['HOST']}:{settings['PORT'] or 5432}/{name}"
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "tests/straggler_session.py", "-p", "no:cacheprovider",
                              "-q", "-W", "error::pytest.PytestWarning"], cwd=BASE_DIR, env=env, capture_output=True,
                             text=True, timeout=100)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        with connection._nodb_cursor() as cursor:
            assert f"test_{name}" not in _databases(cursor)
    finally:
        with connection._nodb_cursor() as cursor:  # what a failure left behind
            cursor.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')
