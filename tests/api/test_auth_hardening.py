"""Issue 10, defects 6, 10 and 11 (Host): the API degrades while Redis is down, invalid API
keys are locked out, HTTPS settings are on in production, a bad Host is the error shape.

Redis is "down" by pointing the cache and the broker at a closed port (``redis_down`` in
tests/conftest.py); the Redis the suite runs with is never touched.
"""
from __future__ import annotations

import runpy
import secrets
import time

import pytest
import requests
from django.conf import settings as django_settings

from api.jobs.models import Job
from api.settings import BASE_DIR
from tests.api.helpers import error_of, small_corpus, upload
from tests.conftest import unused_port

OUTAGE_WARNING = "the cache (Redis) is unreachable"


def _bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _bad_key() -> str:
    return f"cur_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


# --- defect 6: a Redis outage -------------------------------------------------------------

def test_reads_answer_while_redis_is_down_and_the_outage_is_logged_once(client_a, redis_down, caplog):
    for path in ("/api/v1/usage/", "/api/v1/jobs/", "/api/v1/corpora/", "/api/v1/mixtures/") * 3:
        response = client_a.get(path)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
    warnings = [r for r in caplog.records if OUTAGE_WARNING in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING", [r.getMessage() for r in warnings]


def test_the_rate_limit_still_holds_while_redis_is_down(client_a, redis_down):
    from api.tenancy.authentication import ApiKeyRateThrottle

    original = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = {"api_key": "3/min"}
    try:
        statuses = [client_a.get("/api/v1/usage/").status_code for _ in range(4)]
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = original
    assert statuses == [200, 200, 200, 429]


def test_the_cache_goes_back_to_redis_when_it_answers_again(redis_url, settings, monkeypatch, caplog):
    """One failed call sends calls to memory for FALLBACK_SECONDS, then Redis is tried again."""
    from django.core.cache import cache
    from django.core.cache.backends.redis import RedisCache
    from redis.exceptions import ConnectionError as RedisConnectionError

    from api.settings import redis_cache

    config = redis_cache(redis_url)
    config["OPTIONS"]["FALLBACK_SECONDS"] = 0.3
    settings.CACHES = {"default": config}
    caplog.set_level("INFO")
    cache.set("where", "redis")
    calls, original = [], RedisCache.get

    def get(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise RedisConnectionError("Redis went away")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RedisCache, "get", get)
    assert cache.get("where") is None  # the failed call is answered from memory
    cache.set("where", "memory")
    assert cache.get("where") == "memory" and len(calls) == 1, "Redis is not tried while the breaker is open"
    time.sleep(0.35)
    assert cache.get("where") == "redis" and len(calls) == 2
    assert OUTAGE_WARNING in caplog.text and "answers again" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_creating_a_job_while_the_broker_is_down_is_a_503_and_leaves_no_job(tenant_a, client_a, redis_down):
    corpus = upload(client_a, "corpora", "c.jsonl", small_corpus()).json()
    assert client_a.get("/api/v1/corpora/").status_code == 200
    for _ in range(tenant_a[0].max_concurrent_jobs + 1):  # no job is left to use up the quota
        response = client_a.post("/api/v1/jobs/", {"kind": "embed", "params": {"corpus": corpus["id"],
                                                                             "embedder": "hashing"}},
                                 format="json")
        assert response.status_code == 503, response.content
        error = error_of(response)
        assert error["code"] == "queue_unavailable" and "not created" in error["message"]
        assert response["Retry-After"] == "30" and error["detail"]["retry_after_seconds"] == 30
    assert Job.objects.for_tenant(tenant_a[0]).count() == 0


@pytest.mark.django_db(transaction=True)
def test_retrying_a_job_while_the_broker_is_down_leaves_it_as_it_was(tenant_a, client_a, redis_down):
    from api.jobs.kinds import KINDS

    tenant = tenant_a[0]
    corpus = upload(client_a, "corpora", "c.jsonl", small_corpus()).json()
    params = {"corpus": corpus["id"], "embedder": "hashing"}
    plan = KINDS["embed"].plan(tenant_id=tenant.pk, params=params)
    job = Job.objects.for_tenant(tenant).create(
        tenant=tenant, kind="embed", params=params, status="failed", error="worker lost",
        plan=[stage.as_dict() for stage in plan], stage=plan[0].name, shards_total=sum(s.units for s in plan))
    response = client_a.post(f"/api/v1/jobs/{job.pk}/retry/")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "still failed" in error_of(response)["message"]
    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", "worker lost")


# --- defect 10: invalid API keys ----------------------------------------------------------

def test_invalid_api_keys_from_one_address_are_locked_out(client, tenant_a, settings):
    settings.API_KEY_MAX_FAILURES_PER_ADDRESS = 5
    for _ in range(5):
        response = client.get("/api/v1/usage/", **_bearer(_bad_key()))
        assert response.status_code == 401 and error_of(response)["code"] == "unauthenticated"
    locked = client.get("/api/v1/usage/", **_bearer(_bad_key()))
    assert locked.status_code == 429
    error = error_of(locked)
    assert error["code"] == "too_many_failures" and "from this address" in error["message"]
    assert 0 < int(locked["Retry-After"]) <= settings.AUTH_FAILURE_WINDOW_SECONDS
    assert error["detail"] == {"identity": "address", "limit": 5, "window_seconds": 900,
                               "retry_after_seconds": int(locked["Retry-After"])}
    # The address is locked before any key is looked at, even a valid one ...
    assert client.get("/api/v1/usage/", **_bearer(tenant_a[1])).status_code == 429
    # ... while the same key from another address works.
    assert client.get("/api/v1/usage/", REMOTE_ADDR="10.0.0.7", **_bearer(tenant_a[1])).status_code == 200


def test_guesses_at_one_key_from_many_addresses_are_locked_out(client, tenant_a, tenant_b, settings):
    settings.API_KEY_MAX_FAILURES_PER_KEY = 4
    prefix = tenant_a[1].split("_")[1]
    for i in range(4):
        guess = f"cur_{prefix}_{secrets.token_urlsafe(32)}"
        assert client.get("/api/v1/usage/", REMOTE_ADDR=f"10.1.0.{i}", **_bearer(guess)).status_code == 401
    locked = client.get("/api/v1/usage/", REMOTE_ADDR="10.1.1.1", **_bearer(tenant_a[1]))
    assert locked.status_code == 429 and "for this key" in error_of(locked)["message"]
    assert client.get("/api/v1/usage/", REMOTE_ADDR="10.1.1.1", **_bearer(tenant_b[1])).status_code == 200


def test_the_lockout_ends_with_its_window(client, tenant_a, settings):
    settings.API_KEY_MAX_FAILURES_PER_ADDRESS = 2
    settings.AUTH_FAILURE_WINDOW_SECONDS = 1
    for _ in range(2):
        client.get("/api/v1/usage/", **_bearer(_bad_key()))
    assert client.get("/api/v1/usage/", **_bearer(tenant_a[1])).status_code == 429
    time.sleep(1.3)
    assert client.get("/api/v1/usage/", **_bearer(tenant_a[1])).status_code == 200


def test_limits_set_to_zero_switch_the_lockout_off(client, settings, db):
    settings.API_KEY_MAX_FAILURES_PER_ADDRESS = 0
    settings.API_KEY_MAX_FAILURES_PER_KEY = 0
    assert {client.get("/api/v1/usage/", **_bearer(_bad_key())).status_code for _ in range(60)} == {401}


def test_the_lockout_keeps_working_while_redis_is_down(client, tenant_a, settings, redis_down, caplog):
    settings.API_KEY_MAX_FAILURES_PER_ADDRESS = 3
    statuses = [client.get("/api/v1/usage/", **_bearer(_bad_key())).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]  # counted in this process's memory meanwhile
    assert client.get("/api/v1/usage/", REMOTE_ADDR="10.0.0.9", **_bearer(tenant_a[1])).status_code == 200
    assert OUTAGE_WARNING in caplog.text


def test_x_forwarded_for_counts_only_behind_trusted_proxies(client, settings, db):
    settings.API_KEY_MAX_FAILURES_PER_ADDRESS = 2
    # No trusted proxy: a client writing its own X-Forwarded-For is still one address.
    statuses = [client.get("/api/v1/usage/", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}", **_bearer(_bad_key())).status_code
                for i in range(3)]
    assert statuses == [401, 401, 429]
    # Behind one proxy (REMOTE_ADDR is the proxy), the address it appended is the client's.
    settings.TRUSTED_PROXIES = 1
    proxy = {"REMOTE_ADDR": "10.9.9.9"}
    spoofed = [client.get("/api/v1/usage/", HTTP_X_FORWARDED_FOR=f"{i}.1.1.1, 198.51.100.1", **proxy,
                          **_bearer(_bad_key())).status_code for i in range(3)]
    assert spoofed == [401, 401, 429], "what the client wrote before the proxy's entry does not count"
    other = client.get("/api/v1/usage/", HTTP_X_FORWARDED_FOR="198.51.100.2", **proxy, **_bearer(_bad_key()))
    assert other.status_code == 401


# --- defect 10: HTTPS ---------------------------------------------------------------------

def _settings_under(monkeypatch, tmp_path, **env) -> dict:
    """api/settings.py evaluated afresh under ``env`` (and nothing else that would change it)."""
    for name in ("DEBUG", "HTTPS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
                 "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_DIR / "api" / "settings.py"))


def test_production_settings_are_https_only_by_default(monkeypatch, tmp_path):
    production = _settings_under(monkeypatch, tmp_path, DEBUG="false")
    assert production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    assert production["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600 and production["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert production["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    development = _settings_under(monkeypatch, tmp_path, DEBUG="true")
    assert not development["SESSION_COOKIE_SECURE"] and not development["CSRF_COOKIE_SECURE"]
    assert development["SECURE_HSTS_SECONDS"] == 0 and development["SECURE_PROXY_SSL_HEADER"] is None
    plain = _settings_under(monkeypatch, tmp_path, DEBUG="false", HTTPS="false")
    assert not plain["SESSION_COOKIE_SECURE"] and plain["SECURE_HSTS_SECONDS"] == 0
    tuned = _settings_under(monkeypatch, tmp_path, SECURE_HSTS_SECONDS="300", SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
                            SECURE_PROXY_SSL_HEADER="false")
    assert tuned["SECURE_HSTS_SECONDS"] == 300 and not tuned["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert tuned["SECURE_PROXY_SSL_HEADER"] is None and tuned["SESSION_COOKIE_SECURE"]


def test_over_https_cookies_are_secure_and_hsts_is_sent(client, django_user_model, settings):
    """Through the middleware, as production serves it: the proxy says https in X-Forwarded-Proto."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = 31536000, True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    django_user_model.objects.create_user(username="carol", password="carol-password")
    page = client.get("/console/login/", HTTP_X_FORWARDED_PROTO="https")
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert page.cookies["csrftoken"]["secure"] is True
    logged_in = client.post("/console/login/", {"username": "carol", "password": "carol-password"},
                            HTTP_X_FORWARDED_PROTO="https")
    assert logged_in.status_code == 302 and logged_in.cookies["sessionid"]["secure"] is True
    api = client.get("/api/v1/schema/", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" in api
    # Plain http (no proxy header): no HSTS, which browsers would ignore anyway.
    assert "Strict-Transport-Security" not in client.get("/console/login/")


@pytest.mark.django_db(transaction=True)
def test_the_embedded_stack_serves_the_console_over_plain_http(django_user_model, monkeypatch):
    """`manage.py serve` on 127.0.0.1 turns HTTPS off (a real HTTP client does not send Secure
    cookies over http, so login would fail its CSRF check)."""
    from api.core.embedded import EmbeddedStack

    monkeypatch.delenv("HTTPS", raising=False)
    for name in django_settings.PLAIN_HTTP_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(django_settings, name, getattr(django_settings, name))  # restored afterwards
    django_settings.HTTPS = django_settings.SESSION_COOKIE_SECURE = django_settings.CSRF_COOKIE_SECURE = True
    django_settings.SECURE_HSTS_SECONDS = 31536000
    django_user_model.objects.create_user(username="dave", password="dave-password")
    stack = EmbeddedStack(host="127.0.0.1", port=unused_port())
    stack._serve_plain_http()
    stack._start_web()
    try:
        session = requests.Session()
        page = session.get(f"{stack.base_url}/console/login/", timeout=10)
        assert page.status_code == 200 and "Strict-Transport-Security" not in page.headers
        assert "secure" not in page.headers["Set-Cookie"].lower()
        response = session.post(f"{stack.base_url}/console/login/", timeout=10, allow_redirects=False,
                                data={"username": "dave", "password": "dave-password",
                                      "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                                headers={"Referer": f"{stack.base_url}/console/login/"})
        assert response.status_code == 302, response.text[:500]
        assert session.get(f"{stack.base_url}/console/", timeout=10).url.endswith("/console/")
    finally:
        stack.stop()


def test_the_embedded_stack_keeps_https_on_where_it_was_asked_for(monkeypatch):
    from api.core.embedded import EmbeddedStack

    for name in django_settings.PLAIN_HTTP_OVERRIDES:
        monkeypatch.setattr(django_settings, name, getattr(django_settings, name))
    django_settings.SESSION_COOKIE_SECURE = True
    monkeypatch.setenv("HTTPS", "true")  # e.g. behind a TLS proxy on the same host
    EmbeddedStack(host="127.0.0.1")._serve_plain_http()
    assert django_settings.SESSION_COOKIE_SECURE is True
    monkeypatch.delenv("HTTPS")
    EmbeddedStack(host="0.0.0.0")._serve_plain_http()  # not loopback: only a warning
    assert django_settings.SESSION_COOKIE_SECURE is True
    EmbeddedStack(host="::1")._serve_plain_http()
    assert django_settings.SESSION_COOKIE_SECURE is False


# --- defect 11: the Host header -----------------------------------------------------------

def test_a_disallowed_host_is_a_400_in_the_error_shape(client_a, client, db):
    for path in ("/api/v1/usage/", "/api/v1/schema/", "/api/v1/nothing/"):
        response = client_a.get(path, HTTP_HOST="evil.example.com")
        assert response.status_code == 400 and response["Content-Type"] == "application/json", path
        assert error_of(response)["code"] == "disallowed_host"
        assert "evil.example.com" not in response.content.decode()
    post = client_a.post("/api/v1/jobs/", {}, format="json", HTTP_HOST="evil.example.com")
    assert post.status_code == 400 and error_of(post)["code"] == "disallowed_host"
    console = client.get("/console/login/", HTTP_HOST="evil.example.com")
    assert console.status_code == 400 and console["Content-Type"].startswith("text/html")
