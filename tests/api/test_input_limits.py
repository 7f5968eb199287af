"""Input limits through the API (issue 10, items 7 and 9, build item 4): no input is a 5xx.

Every refusal is a 4xx in the one error shape, names the field (or file, line and field)
and leaves nothing behind; SQLite and PostgreSQL accept and refuse the same inputs (run
this file with ``DATABASE_URL`` pointing at each).
"""
from __future__ import annotations

import pytest

from api.schedules.models import Schedule
from tests.api.helpers import error_of, small_corpus, upload


@pytest.fixture
def corpus(client_a):
    return upload(client_a, "corpora", "c.jsonl", small_corpus(9)).json()


def _fields(error: dict) -> dict:
    return error["detail"]["fields"]


# -- 1. a schedule's job template is always whole -----------------------------------------

def test_patching_a_schedule_with_a_template_without_kind_is_a_400_naming_the_field(client_a, corpus, settings):
    settings.SCHEDULE_MIN_INTERVAL_SECONDS = 5
    template = {"kind": "embed", "params": {"corpus": corpus["id"], "embedder": "hashing"}}
    created = client_a.post("/api/v1/schedules/", {"interval_seconds": 60, "job_template": template}, format="json")
    assert created.status_code == 201, created.json()
    url = f"/api/v1/schedules/{created.json()['id']}/"
    for body in ({"job_template": {}}, {"job_template": {"params": {"corpus": corpus["id"]}}}):
        response = client_a.patch(url, body, format="json")
        assert response.status_code == 400, response.content
        error = error_of(response)
        assert error["code"] == "validation_error" and "kind" in _fields(error)["job_template"], error
        assert "job_template" in error["message"] and "kind" in error["message"]
    assert Schedule.unscoped_objects.get().job_params == template["params"]
