"""``make demo`` is safe to re-run and tunable: its credentials handling run twice leaves one
active demo key and the same console password, and ``BUDGET`` / ``EMBEDDER`` reach the command.
(The whole demo, stack included, is what ``make demo`` runs; these check its parts quickly.)"""
from __future__ import annotations

import io
import subprocess

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from api.core.management.commands.demo import Command, demo_login, login_lines
from api.settings import BASE_DIR
from api.tenancy.models import ApiKey


@pytest.fixture(autouse=True)
def fast_password_hashes(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _works(secret: str) -> bool:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api.get("/api/v1/usage/").status_code == 200


def test_running_the_demo_twice_leaves_one_active_key_and_the_same_password(db, tmp_path, client):
    first = demo_login(var_dir=tmp_path)
    second = demo_login(var_dir=tmp_path)
    active = ApiKey.objects.for_tenant(second.tenant).filter(revoked_at__isnull=True)
    assert [key.name for key in active] == ["demo"] and second.key.startswith(f"cur_{active.get().prefix}_")
    assert _works(second.key) and not _works(first.key), "the previous run's key is revoked"
    assert (first.revoked, second.revoked) == (0, 1) and first.tenant == second.tenant
    assert (first.password_kept, second.password_kept) == (False, True) and second.password == first.password
    assert client.login(username="demo", password=second.password)
    assert (tmp_path / "demo" / "console-password").stat().st_mode & 0o077 == 0, "readable by its owner only"

    lines = login_lines("http://127.0.0.1:8000", second)
    assert f"password {second.password}; unchanged since the last run" in lines[0]
    assert lines[1].endswith(f"{second.key}   (shown once; the last run's demo key is revoked)")
    assert login_lines("http://x", first)[1].endswith("(shown once)") and "; new)" in login_lines("http://x", first)[0]


def test_a_password_changed_since_the_last_run_is_replaced_and_works(db, tmp_path, client):
    demo_login(var_dir=tmp_path)
    call_command("create_console_user", "demo", tenant=["demo"], password="someone-else-set-this", stdout=io.StringIO())
    again = demo_login(var_dir=tmp_path)
    assert not again.password_kept and again.password != "someone-else-set-this"
    assert client.login(username="demo", password=again.password)
    assert (tmp_path / "demo" / "console-password").read_text().strip() == again.password


def test_budget_and_embedder_reach_the_command():
    options = Command().create_parser("manage.py", "demo").parse_args(["--budget", "5000", "--embedder", "hashing"])
    assert (options.budget, options.embedder) == (5000.0, "hashing")
    dry = subprocess.run(["make", "-n", "demo", "BUDGET=5000", "EMBEDDER=hashing"], cwd=BASE_DIR,
                         capture_output=True, text=True, check=True).stdout
    dry = " ".join(dry.split())  # the unset variables leave blanks
    assert "manage.py demo --budget 5000 --embedder hashing" in dry, dry
