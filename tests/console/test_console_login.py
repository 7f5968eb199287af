"""Issue 10, defect 10: console (and admin) logins are locked out after repeated failures,
per username and per client address, with a clear 429 page; the lockout keeps working
while Redis is down."""
from __future__ import annotations

import pytest

from tests.console.conftest import PASSWORD

LOCKED = "Login locked for now."


@pytest.fixture
def alice(make_user, tenant_a):
    return make_user("alice", tenant_a[0])


def _login(client, username: str, password: str, **extra):
    return client.post("/console/login/", {"username": username, "password": password}, **extra)


def test_forty_wrong_passwords_lock_the_username_out(client, alice, settings):
    assert settings.LOGIN_MAX_FAILURES_PER_ACCOUNT == 10, "the documented default"
    statuses = [_login(client, "alice", f"guess-{i}", REMOTE_ADDR=f"10.2.0.{i}").status_code for i in range(40)]
    assert statuses == [200] * 10 + [429] * 30, "ten tries, then refused, from whatever address"
    page = _login(client, "alice", PASSWORD, REMOTE_ADDR="10.2.1.1")
    assert page.status_code == 429, "the right password does not get through a lockout either"
    text = page.content.decode()
    assert LOCKED in text and "Too many failed logins for this username (10 within 15 minutes)" in text
    assert "try again in 15 minutes" in text and 0 < int(page["Retry-After"]) <= 900
    assert 'name="username"' in text and 'value="alice"' in text, "the form stays, filled in"
    assert "_auth_user_id" not in client.session
    # Another user is not affected.
    other = client.post("/console/login/", {"username": "nobody", "password": "x"}, REMOTE_ADDR="10.2.1.2")
    assert other.status_code == 200 and LOCKED not in other.content.decode()


def test_one_address_trying_many_usernames_is_locked_out(client, alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    statuses = [_login(client, f"user{i}", "guess").status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    locked = _login(client, "alice", PASSWORD)
    assert locked.status_code == 429 and "from this address" in locked.content.decode()
    assert _login(client, "alice", PASSWORD, REMOTE_ADDR="10.3.0.1").status_code == 302


def test_a_successful_login_clears_the_usernames_failures(client, alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    for _ in range(2):
        assert _login(client, "alice", "wrong").status_code == 200
    assert _login(client, "alice", PASSWORD).status_code == 302
    client.post("/console/logout/")
    assert [_login(client, "alice", "wrong").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_the_admin_login_is_locked_out_too(client, make_user, settings):
    make_user("root", staff=True)
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    for _ in range(3):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session, "no password is tried"
    assert _login(client, "root", PASSWORD).status_code == 429


def test_logins_work_and_stay_locked_out_while_redis_is_down(client, alice, settings, redis_down, caplog):
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    assert _login(client, "alice", PASSWORD).status_code == 302
    client.post("/console/logout/")
    statuses = [_login(client, "alice", "wrong").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429], "counted in this process's memory meanwhile"
    assert "the cache (Redis) is unreachable" in caplog.text
