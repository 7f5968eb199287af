"""Input limits through the API (issue 10, items 7 and 9, build item 4): no input is a 5xx.

Every refusal is a 4xx in the one error shape, names the field (or file, line and field)
and leaves nothing behind; SQLite and PostgreSQL accept and refuse the same inputs (run
this file with ``DATABASE_URL`` pointing at each).
"""
from __future__ import annotations

import gzip
import json

import pytest
from rest_framework import serializers

from api.datasets.models import Dataset, PredictionSet
from api.jobs.kinds import KINDS
from api.modeling.models import PerformanceModel, PilotRun
from api.modeling.serializers import PilotRunInputSerializer, PredictionInputSerializer
from api.schedules.models import Schedule
from curation.laws import Pool
from curation.mixture import MixtureLaw
from tests.api.helpers import error_of, files_under, jsonl, small_corpus, upload

NO_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def corpus(client_a):
    return upload(client_a, "corpora", "c.jsonl", small_corpus(9)).json()


@pytest.fixture
def model(tenant_a, corpus):
    """A fitted performance model of the corpus, stored as the fit job stores one."""
    tenant, dataset = tenant_a[0], Dataset.unscoped_objects.get(pk=corpus["id"])
    law = MixtureLaw(pools=tuple(Pool(name=s, unique=n, ot=0.2 + 0.1 * i, quality=0.5)
                                 for i, (s, n) in enumerate(sorted(dataset.source_counts.items()))),
                     c=0.8, A=0.05, beta=0.25, gamma=0.8, eta=0.6, tau=6.0, higher_is_better=True, rmse=0.004,
                     observed_sizes=(50.0, 800.0), observed_repetitions=3.0,
                     provenance={name: "pilot_runs" for name in ("c", "A", "beta", "gamma", "eta", "tau")})
    return PerformanceModel.objects.for_tenant(tenant).create(
        tenant=tenant, corpus=dataset, benchmarks=[], metric="accuracy", kind="effective_data",
        parameters=law.parameters(), pools=law.pool_rows(), fit_error=law.rmse, provenance=law.provenance,
        observations=[])


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


def test_an_uploaded_corpus_line_nested_100k_levels_names_file_and_line(client_a, artifact_root):
    content = b'{"text": "fine"}\n{"text": "deep", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    response = upload(client_a, "corpora", "deep.jsonl", content)
    assert response.status_code == 400, response.content[:300]
    error = error_of(response)
    assert error["code"] == "invalid_json" and error["detail"] == {"file": "deep.jsonl", "line": 2, "field": None}
    assert "deep.jsonl, line 2" in error["message"] and "64" in error["message"]
    assert files_under(artifact_root) == [] and Dataset.unscoped_objects.count() == 0


def test_an_uploaded_predictions_line_nested_100k_levels_names_file_and_line(client_a, corpus):
    content = b'{"id": "d0", "label": 0, "probs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    response = upload(client_a, f"corpora/{corpus['id']}/predictions", "p.jsonl", content)
    assert response.status_code == 400, response.content[:300]
    error = error_of(response)
    assert (error["code"], error["detail"]["line"]) == ("invalid_json", 1)
    assert PredictionSet.unscoped_objects.count() == 0


# -- 3. numbers: finite, bounded, never booleans -------------------------------------------

BIG = int("9" * 400)


def test_a_prediction_weight_of_400_digits_is_a_400_naming_the_mixture(client_a, model):
    mixture = {"alpha": BIG, "beta": 0, "gamma": 0}
    body = '{"performance_model": "%s", "mixture": {"alpha": %d, "beta": 0}, "budget": 100}' % (model.pk, BIG)
    response = client_a.post("/api/v1/predictions/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["detail"]["field"] == "mixture" and "alpha" in error["message"]
    assert "400-digit" in error["message"] and len(error["message"]) < 300
    good = client_a.post("/api/v1/predictions/", {"performance_model": str(model.pk),
                                                  "mixture": mixture | {"alpha": 1}, "budget": 100}, format="json")
    assert good.status_code == 200, good.json()


def test_a_pilot_run_weight_of_400_digits_is_a_400_naming_the_item(client_a, corpus):
    body = ('{"corpus": "%s", "mixture": {"alpha": %d}, "size": 10, "metric": "m", "value": 0.5}'
            % (corpus["id"], BIG))
    response = client_a.post("/api/v1/pilot-runs/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "invalid_mixture" and error["detail"] == {"field": "mixture", "item": 0}
    assert PilotRun.unscoped_objects.count() == 0


def _numeric_fields(serializer_class) -> dict[str, serializers.Field]:
    return {name: field for name, field in serializer_class().fields.items()
            if isinstance(field, (serializers.FloatField, serializers.IntegerField))}


INPUTS = {f"job:{name}": kind.params_serializer for name, kind in sorted(KINDS.items())} | {
    "pilot-run": PilotRunInputSerializer, "prediction": PredictionInputSerializer}


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_every_number_a_client_sends_is_strict_and_bounded(name):
    from api.core.fields import StrictFloatField, StrictIntegerField

    fields = _numeric_fields(INPUTS[name])
    for nested_name, nested in INPUTS[name]().fields.items():  # e.g. contamination: {"ngram", "semantic"}
        if isinstance(nested, serializers.Serializer):
            fields |= {f"{nested_name}.{k}": v for k, v in _numeric_fields(type(nested)).items()}
    assert fields, name
    for field_name, field in fields.items():
        assert isinstance(field, (StrictFloatField, StrictIntegerField)), (name, field_name, type(field))
        assert field.min_value is not None and field.max_value is not None, (name, field_name)


def _job(client, kind: str, params: dict):
    return client.post("/api/v1/jobs/", {"kind": kind, "params": params}, format="json")


@pytest.mark.parametrize("kind,field", [(kind, field) for kind in sorted(KINDS)
                                        for field in sorted(_numeric_fields(KINDS[kind].params_serializer))])
def test_a_boolean_is_never_read_as_a_number_in_job_params(client_a, kind, field):
    response = _job(client_a, kind, {field: True})
    assert response.status_code == 400, response.content
    message = str(_fields(error_of(response)).get(field))
    assert "boolean" in message, (field, error_of(response))


@pytest.mark.parametrize("field", ["size", "value"])
def test_a_boolean_is_never_read_as_a_number_in_pilot_runs(client_a, corpus, field):
    run = {"corpus": corpus["id"], "mixture": {"alpha": 1}, "size": 10, "metric": "m", "value": 0.5, field: True}
    response = client_a.post("/api/v1/pilot-runs/", run, format="json")
    assert response.status_code == 400 and "boolean" in json.dumps(error_of(response)), response.content
    assert PilotRun.unscoped_objects.count() == 0


@pytest.mark.parametrize("field", ["budget", "model_parameters", "level"])
def test_a_boolean_is_never_read_as_a_number_in_predictions(client_a, model, field):
    request = {"performance_model": str(model.pk), "mixture": {"alpha": 1}, "budget": 100, field: True}
    response = client_a.post("/api/v1/predictions/", request, format="json")
    assert response.status_code == 400 and "boolean" in str(_fields(error_of(response))[field]), response.content


TOO_LARGE = [
    ("curate", {"budget": 1e30}, "budget"),
    ("mixture", {"budget": 1e30}, "budget"),
    ("mixture", {"budget": 1e16, "budget_unit": "tokens"}, "budget"),
    ("mixture", {"budget": 1e31, "budget_unit": "flops", "model_parameters": 1e9}, "budget"),
    ("mixture", {"budget": 1e20, "budget_unit": "flops", "model_parameters": 1e16}, "model_parameters"),
    ("curate", {"budget": True}, "budget"),
    ("curate", {"budget": 100, "seed": 10**30}, "seed"),
    ("prune", {"seed": 2**32}, "seed"),
    ("prune", {"budget_documents": 1e30}, "budget_documents"),
    ("betr", {"flops": 1e31}, "flops"),
    ("ot", {"seed": -1}, "seed"),
]


@pytest.mark.parametrize("kind,params,field", TOO_LARGE, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(TOO_LARGE)])
def test_numbers_out_of_range_are_refused_when_the_job_is_created(client_a, dispatched, kind, params, field):
    response = _job(client_a, kind, {"corpus": NO_ID, "benchmarks": [NO_ID], **params})
    assert response.status_code == 400, response.content
    assert field in _fields(error_of(response)), error_of(response)
    assert not dispatched


@pytest.mark.parametrize("kind,params", [
    ("mixture", {"budget": 1e15}), ("mixture", {"budget": 1e30, "budget_unit": "flops", "model_parameters": 1e15}),
    ("curate", {"budget": 5e3, "seed": 2**32 - 1}), ("prune", {"seed": 2**32 - 1, "budget_documents": 1e15}),
])
def test_numbers_at_the_bounds_pass_validation(kind, params):
    serializer = KINDS[kind].params_serializer(data={"corpus": NO_ID, "benchmarks": [NO_ID], **params})
    assert serializer.is_valid(), serializer.errors


def test_a_budget_that_is_too_large_in_samples_is_refused_against_the_corpus(client_a, model, dispatched):
    """1e30 flops of a 1-parameter model is 1.7e29 tokens, far past 1e15 samples: refused at creation
    (it used to run the whole pipeline and overflow when the manifest counted repeats)."""
    response = _job(client_a, "mixture", {"performance_model": str(model.pk), "budget": 1e30,
                                          "budget_unit": "flops", "model_parameters": 1})
    assert response.status_code == 400, response.content
    assert "samples" in str(_fields(error_of(response))["budget"]) and not dispatched
    ok = _job(client_a, "mixture", {"performance_model": str(model.pk), "budget": 1e15})
    assert ok.status_code == 202, ok.content


def test_a_prediction_budget_is_bounded_by_unit(client_a, model):
    request = {"performance_model": str(model.pk), "mixture": {"alpha": 1}}
    assert client_a.post("/api/v1/predictions/", request | {"budget": 1e15}, format="json").status_code == 200
    for change in ({"budget": 1.1e15}, {"budget": 1e16, "budget_unit": "tokens"},
                   {"budget": 1e31, "budget_unit": "flops", "model_parameters": 1e9}):
        response = client_a.post("/api/v1/predictions/", request | change, format="json")
        assert response.status_code == 400 and "budget" in json.dumps(error_of(response)), (change, response.content)


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


# -- 5. what one database holds, the other holds too -----------------------------------------

def test_a_long_file_name_without_name_is_stored_with_a_shortened_name(client_a):
    filename = "n" * 240 + ".jsonl"
    response = upload(client_a, "corpora", filename, small_corpus(3))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["filename"] == filename and len(body["name"]) == 200
    assert body["name"].endswith("….jsonl") and body["name"].startswith("nnnn")
    explicit = upload(client_a, "corpora", "c.jsonl", small_corpus(3), name="x" * 201)
    assert explicit.status_code == 400 and "name" in _fields(error_of(explicit))


def test_a_long_prediction_file_name_is_stored_with_a_shortened_name(client_a, corpus):
    content = jsonl([{"id": "d0", "label": 0, "probs": [0.5, 0.5]}])
    response = upload(client_a, f"corpora/{corpus['id']}/predictions", "p" * 250 + ".jsonl", content)
    assert response.status_code == 201, response.content
    assert len(response.json()["name"]) == 200


@pytest.mark.parametrize("filename,content,line,field", [
    ("nul.jsonl", b'{"text": "a", "source": "s"}\n{"text": "b", "source": "x\\u0000y"}\n', 2, "source"),
    ("nul.jsonl", b'{"text": "a", "id": "a\\u0000"}\n', 1, "id"),
    ("nul.csv", b"text,source\na,s\nb,x\x00y\n", 3, "source"),
])
def test_a_nul_in_a_source_or_id_is_refused_naming_file_line_and_field(client_a, artifact_root, filename, content,
                                                                        line, field):
    response = upload(client_a, "corpora", filename, content)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "invalid_field_value"
    assert error["detail"] == {"file": filename, "line": line, "field": field}
    assert "NUL" in error["message"] and f"line {line}" in error["message"]
    assert files_under(artifact_root) == [] and Dataset.unscoped_objects.count() == 0


def test_a_nul_in_the_text_is_kept(client_a):
    response = upload(client_a, "corpora", "t.jsonl", b'{"text": "a\\u0000b", "source": "s"}\n')
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("content,field", [
    (b'{"text": "a\\ud800"}\n', "text"), (b'{"text": "a", "source": "\\udc00"}\n', "source"),
    (b'{"text": "a", "id": "\\udfff"}\n', "id"), (b'{"text": "a", "lang": {"x": "\\ud800"}}\n', "lang"),
])
def test_a_lone_surrogate_is_refused_naming_the_field(client_a, artifact_root, content, field):
    response = upload(client_a, "corpora", "s.jsonl", content)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "invalid_encoding" and error["detail"] == {"file": "s.jsonl", "line": 1, "field": field}
    assert files_under(artifact_root) == [] and Dataset.unscoped_objects.count() == 0


# -- 6. hostile uploads ---------------------------------------------------------------------------

def test_a_gzip_bomb_is_a_400_file_too_large_and_leaves_nothing(client_a, artifact_root, settings):
    settings.UPLOAD_MAX_COMPRESSION_RATIO = 50
    line = json.dumps({"text": "x" * 990}).encode() + b"\n"
    bomb = gzip.compress(line * 5000)  # 5 MB of valid JSON lines in a few KB
    assert len(bomb) * 50 < 1024**2 < len(line) * 5000
    response = upload(client_a, "corpora", "bomb.jsonl.gz", bomb)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "file_too_large" and error["detail"]["file"] == "bomb.jsonl.gz"
    assert "50" in error["message"] and "compressed" in error["message"]
    assert files_under(artifact_root) == [] and Dataset.unscoped_objects.count() == 0


def test_a_line_over_the_limit_is_a_400_naming_the_line(client_a, artifact_root, settings):
    settings.UPLOAD_MAX_LINE_BYTES = 1000
    content = jsonl([{"text": "short"}, {"text": "y" * 5000}, {"text": "short"}])
    response = upload(client_a, "corpora", "long.jsonl", content)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "line_too_long" and error["detail"] == {"file": "long.jsonl", "line": 2, "field": None}
    assert "1000 bytes" in error["message"]
    assert files_under(artifact_root) == [] and Dataset.unscoped_objects.count() == 0
    corpus = upload(client_a, "corpora", "c.jsonl", small_corpus(3)).json()
    content = jsonl([{"id": "d0", "label": 0, "probs": [0.5, 0.5]},
                     {"id": "d1", "label": 0, "probs": [0.5, 0.5], "pad": "y" * 5000}])
    predictions = upload(client_a, f"corpora/{corpus['id']}/predictions", "p.jsonl", content)
    assert error_of(predictions)["code"] == "line_too_long" and error_of(predictions)["detail"]["line"] == 2


def test_a_huge_integer_probability_is_a_400(client_a, corpus):
    content = b'{"id": "d0", "label": 0, "probs": [%d, 0]}\n' % BIG
    response = upload(client_a, f"corpora/{corpus['id']}/predictions", "p.jsonl", content)
    assert response.status_code == 400, response.content
    assert (error_of(response)["code"], error_of(response)["detail"]["field"]) == ("invalid_probabilities", "probs")


# -- 7. classic Mac line endings -------------------------------------------------------------------

@pytest.mark.parametrize("filename,content", [
    ("cr.jsonl", b'{"text": "a", "source": "s"}\r{"text": "b", "source": "t"}\r\r{"text": "c", "source": "s"}\r'),
    ("cr.csv", b'text,source\ra,s\r"b\rwith a break",t\rc,s'),
    ("cr.tsv.gz", gzip.compress(b"text\tsource\ra\ts\rb\tt\rc\ts\r")),
])
def test_cr_only_line_endings_are_accepted(client_a, filename, content):
    response = upload(client_a, "corpora", filename, content)
    assert response.status_code == 201, response.content
    assert response.json()["documents"] == 3 and response.json()["sources"] == {"s": 2, "t": 1}


def test_errors_in_a_cr_only_file_name_the_right_line(client_a):
    response = upload(client_a, "corpora", "cr.jsonl", b'{"text": "a"}\r{"text": "b"}\r{"text": 3}\r')
    assert error_of(response)["detail"] == {"file": "cr.jsonl", "line": 3, "field": "text"}
