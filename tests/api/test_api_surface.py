"""The error shape everywhere (404, 405, 429, 500), the schema and the docs."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.api.helpers import error_of


def test_unknown_paths_and_bad_ids_are_json_404(client_a):
    for path in ("/api/v1/nothing-here/", "/api/v1/corpora/not-a-uuid/",
                 "/api/v1/jobs/00000000-0000-0000-0000-000000000000/"):
        response = client_a.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"


def test_method_not_allowed_has_the_error_shape(client_a):
    response = client_a.put("/api/v1/corpora/", {})
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_throttling_is_a_429_with_retry_after(client_a, settings):
    from api.tenancy.authentication import ApiKeyRateThrottle

    cache.clear()
    original = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = {"api_key": "3/min"}
    try:
        statuses = [client_a.get("/api/v1/usage/").status_code for _ in range(4)]
        response = client_a.get("/api/v1/usage/")
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert statuses == [200, 200, 200, 429]
    assert error_of(response)["code"] == "rate_limited" and int(response.headers["Retry-After"]) > 0


def test_unhandled_errors_are_logged_and_hide_internals(client_a, monkeypatch, caplog):
    from api.tenancy import views

    def explode(**kwargs):
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(views, "dataset_usage", explode)
    response = client_a.get("/api/v1/usage/")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error" and "secret" not in response.content.decode()
    assert "secret internal detail" in caplog.text


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/docs/"])
def test_schema_and_docs_are_served_without_a_key(client, path, db):
    response = client.get(path)
    assert response.status_code == 200
    if path.endswith("schema/"):
        text = response.content.decode()
        for expected in ("/api/v1/corpora/", "/api/v1/jobs/{id}/cancel/", "/api/v1/usage/", "bearer"):
            assert expected in text.lower() if expected == "bearer" else expected in text
    else:
        assert b"swagger" in response.content.lower() and b"cdn" not in response.content.lower()


def test_malformed_query_filters_are_a_400(client_a):
    response = client_a.get("/api/v1/pilot-runs/?corpus=not-a-uuid")
    assert response.status_code == 400 and error_of(response)["code"] == "validation_error"
    assert client_a.get("/api/v1/jobs/?status=nonsense").json()["results"] == []


def test_health_endpoints_answer_without_credentials(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok", "database": "ok"}
    assert client.post("/healthz").status_code == 405


def test_readiness_is_503_while_the_database_does_not_answer(client, monkeypatch):
    from django.db import OperationalError, connection

    def broken_cursor(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["error"]["code"] == "database_unavailable"
    assert client.get("/healthz").status_code == 200, "liveness must not follow the database"
