"""Input limits through the API (issue 10, items 7 and 9, build item 4): no input is a 5xx.

Every refusal is a 4xx in the one error shape, names the field (or file, line and field)
and leaves nothing behind; SQLite and PostgreSQL accept and refuse the same inputs (run
this file with ``DATABASE_URL`` pointing at each).
"""
from __future__ import annotations

import json

import pytest

from api.datasets.models import Dataset
from api.schedules.models import Schedule
from tests.api.helpers import error_of, files_under, small_corpus, upload


NO_ID = "00000000-0000-0000-0000-000000000000"


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


# -- 2. JSON nesting: request bodies and uploaded lines ------------------------------------

def _nested(depth: int, leaf: str = "1") -> str:
    return '{"a": ' * depth + leaf + "}" * depth


@pytest.mark.parametrize("path", ["/api/v1/jobs/", "/api/v1/pilot-runs/", "/api/v1/predictions/",
                                  "/api/v1/schedules/"])
def test_a_request_body_nested_100k_levels_is_a_400_in_the_error_shape(client_a, path):
    body = '{"kind": "embed", "params": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client_a.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    error = error_of(response)
    assert error["code"] == "parse_error" and error["detail"]["max_depth"] == 64
    assert "64" in error["message"] and "nested" in error["message"]


def test_the_body_depth_limit_is_a_setting_and_is_exact(client_a, settings):
    settings.JSON_MAX_DEPTH = 5
    at_limit = client_a.post("/api/v1/jobs/", '{"kind": "embed", "params": ' + _nested(4) + "}",
                             content_type="application/json")
    assert at_limit.status_code == 400 and error_of(at_limit)["code"] == "validation_error"  # parsed, then refused
    over = client_a.post("/api/v1/jobs/", '{"kind": "embed", "params": ' + _nested(5) + "}",
                         content_type="application/json")
    assert over.status_code == 400 and error_of(over)["detail"] == {"max_depth": 5}


def test_brackets_inside_strings_do_not_count_as_nesting(client_a, settings):
    settings.JSON_MAX_DEPTH = 3
    body = json.dumps({"kind": "embed", "params": {"corpus": NO_ID, "embedder": "[" * 500 + "{" * 500}})
    response = client_a.post("/api/v1/jobs/", body, content_type="application/json")
    assert error_of(response)["code"] == "validation_error", response.content  # the embedder name, not the depth


def test_every_api_view_parses_json_with_the_depth_limit():
    from django.urls import get_resolver
    from rest_framework.parsers import JSONParser
    from rest_framework.views import APIView

    from api.core.parsers import JSONParser as BoundedJSONParser

    def views(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern.url_patterns)
            else:
                yield getattr(pattern.callback, "cls", None)

    checked = [view for view in views(get_resolver().url_patterns) if view and issubclass(view, APIView)]
    assert len(checked) >= 8
    for view in checked:
        json_parsers = [p for p in view.parser_classes if issubclass(p, JSONParser)]
        assert all(issubclass(p, BoundedJSONParser) for p in json_parsers), (view, view.parser_classes)


# -- 4. bodies over DATA_UPLOAD_MAX_MEMORY_SIZE ----------------------------------------------

def test_a_json_body_over_10_mb_is_a_413_in_the_error_shape(client_a, settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 10 * 1024**2
    body = json.dumps({"kind": "embed", "params": {"corpus": "x" * (10 * 1024**2)}})
    response = client_a.post("/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 413, response.content[:300]
    error = error_of(response)
    assert error["code"] == "request_too_large" and error["detail"] == {"max_bytes": 10 * 1024**2}


def test_a_form_field_over_the_limit_is_a_413_in_the_error_shape(client_a, settings, artifact_root):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = upload(client_a, "corpora", "c.jsonl", small_corpus(3), name="n" * 2000)
    assert response.status_code == 413, response.content[:300]
    assert error_of(response)["code"] == "request_too_large"
    assert files_under(artifact_root) == [] and Dataset.unscoped_objects.count() == 0
