"""The OpenAPI schema (api/core/schema.py) documents what the API returns and reads.

Fast checks of the documented shapes; tests/api/test_schema_conformance.py fuzzes every
operation against the same schema.
"""
from __future__ import annotations

import pytest

from tests.api.helpers import error_of, small_corpus, upload

ERROR_STATUSES = {"400", "401", "404", "409", "413", "429", "503"}


@pytest.fixture(scope="module")
def schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _resolve(schema, node: dict) -> dict:
    while "$ref" in node:
        section, name = node["$ref"].split("/")[-2:]
        node = schema["components"][section][name]
    return node


def test_every_operation_documents_the_errors_in_one_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "detail"]
    for label, operation in _operations(schema):
        assert ERROR_STATUSES <= set(operation["responses"]), label
        for status in ERROR_STATUSES:
            response = _resolve(schema, operation["responses"][status])
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "Retry-After" in schema["components"]["responses"]["RateLimited"]["headers"]


def test_only_paginated_answers_are_documented_as_paginated(schema):
    """Lists, and the one extra action that pages its answer (a corpus's contamination)."""
    pages = {label for label, operation in _operations(schema)
             if "cursor" in {p["name"] for p in operation.get("parameters", [])}}
    assert pages == {f"GET /api/v1/{name}/" for name in ("benchmarks", "corpora", "jobs", "mixtures",
                                                          "performance-models", "pilot-runs", "schedules")
                     } | {"GET /api/v1/corpora/{id}/contamination/"}
    contamination = dict(_operations(schema))["GET /api/v1/corpora/{id}/contamination/"]
    page = contamination["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert set(schema["components"]["schemas"][page]["properties"]) == {"next", "previous", "results"}
    for label in ("GET /api/v1/corpora/{id}/predictions/", "GET /api/v1/schedules/{id}/firings/",
                  "POST /api/v1/pilot-runs/"):
        operation = dict(_operations(schema))[label]
        success = next(r for status, r in operation["responses"].items() if status.startswith("2"))
        assert success["content"]["application/json"]["schema"]["type"] == "array", label


def test_bare_arrays_are_returned_where_documented(client_a):
    corpus = upload(client_a, "corpora", "c.jsonl", small_corpus(6)).json()
    assert client_a.get(f"/api/v1/corpora/{corpus['id']}/predictions/").json() == []
    run = {"corpus": corpus["id"], "mixture": {"alpha": 0.5, "beta": 0.5}, "size": 10, "metric": "m", "value": 1}
    created = client_a.post("/api/v1/pilot-runs/", run, format="json")
    assert created.status_code == 201 and isinstance(created.json(), list)


@pytest.mark.parametrize("given,status", [("", 200), ("2", 200), ("500", 200), ("0", 400), ("501", 400),
                                          ("ten", 400), ("null", 400)])
def test_page_size_is_an_integer_from_1_to_500(client_a, given, status):
    response = client_a.get(f"/api/v1/jobs/?page_size={given}")
    assert response.status_code == status, response.content
    if status == 400:
        error = error_of(response)
        assert error["code"] == "validation_error" and error["detail"]["field"] == "page_size"
        assert "an integer from 1 to 500" in error["message"]


def test_optional_query_parameters_may_be_empty(schema):
    for label, operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                assert parameter.get("allowEmptyValue", False) is not parameter.get("required", False), label


def test_positive_numbers_are_documented_and_validated_as_exclusive(schema, client_a):
    components = schema["components"]["schemas"]
    for component, field in (("PredictionInputRequest", "budget"), ("PilotRunInputRequest", "size"),
                             ("MixtureParamsRequest", "budget")):
        documented = components[component]["properties"][field]
        assert (documented["minimum"], documented.get("exclusiveMinimum")) == (0.0, True), (component, documented)
    corpus = upload(client_a, "corpora", "c.jsonl", small_corpus(6)).json()
    run = {"corpus": corpus["id"], "mixture": {"alpha": 0.5, "beta": 0.5}, "metric": "m", "value": 1}
    refused = client_a.post("/api/v1/pilot-runs/", {**run, "size": 0}, format="json")
    assert refused.status_code == 400 and "greater than 0" in error_of(refused)["message"], refused.content
    assert client_a.post("/api/v1/pilot-runs/", {**run, "size": 1e-9}, format="json").status_code == 201


def test_json_bodies_are_json_and_uploads_multipart(schema, client_a):
    bodies = {label: set(operation["requestBody"]["content"]) for label, operation in _operations(schema)
              if "requestBody" in operation}
    uploads = {"POST /api/v1/corpora/", "POST /api/v1/benchmarks/", "POST /api/v1/corpora/{id}/predictions/"}
    assert {label for label, types in bodies.items() if types == {"multipart/form-data"}} == uploads
    assert all(types == {"application/json"} for label, types in bodies.items() if label not in uploads)
    assert all("415" in dict(_operations(schema))[label]["responses"] for label in bodies)
    form = client_a.post("/api/v1/jobs/", {"kind": "embed"}, format="multipart")
    assert form.status_code == 415 and error_of(form)["code"], form.content
