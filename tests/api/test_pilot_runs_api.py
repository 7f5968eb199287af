"""Pilot runs: validated observations of (mixture, size, metric)."""
from __future__ import annotations

import pytest

from api.modeling.models import PilotRun
from tests.api.helpers import error_of, small_corpus, upload


@pytest.fixture
def corpus(client_a):
    return upload(client_a, "corpora", "c.jsonl", small_corpus(9)).json()


def _run(corpus_id, **overrides):
    return {"corpus": corpus_id, "mixture": {"alpha": 0.25, "beta/q0": 0.75}, "size": 1e6, "metric": "accuracy",
            "value": 0.41, **overrides}


def test_one_or_many_observations_are_stored(client_a, corpus):
    response = client_a.post("/api/v1/pilot-runs/", _run(corpus["id"]), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()[0]["mixture"] == {"alpha": 0.25, "beta/q0": 0.75}
    many = [_run(corpus["id"], size=s, value=v) for s, v in ((1e5, 0.2), (1e7, 0.5))]
    assert client_a.post("/api/v1/pilot-runs/", many, format="json").status_code == 201
    listed = client_a.get(f"/api/v1/pilot-runs/?corpus={corpus['id']}&metric=accuracy").json()["results"]
    assert sorted(r["size"] for r in listed) == [1e5, 1e6, 1e7]
    assert all(r["origin"] == "user" for r in listed)


@pytest.mark.parametrize("overrides,status,code,needle", [
    ({"size": -5}, 400, "validation_error", "size"),
    ({"size": 0}, 400, "validation_error", "size"),
    ({"mixture": {"alpha": 0.5, "beta": 0.6}}, 400, "invalid_mixture", "sum to 1"),
    ({"mixture": {"alpha": 1.2, "beta": -0.2}}, 400, "invalid_mixture", ">= 0"),
    ({"mixture": {"alpha": 0.5, "delta": 0.5}}, 400, "invalid_mixture", "unknown pool"),
    ({"mixture": {"alpha/q10": 1.0}}, 400, "invalid_mixture", "unknown pool"),
    ({"mixture": {}}, 400, "invalid_mixture", "non-empty"),
    ({"corpus": "00000000-0000-0000-0000-000000000000"}, 404, "not_found", "no corpus"),
])
def test_invalid_observations_are_rejected_entirely(client_a, corpus, overrides, status, code, needle):
    batch = [_run(corpus["id"]), _run(corpus["id"], **overrides)]
    response = client_a.post("/api/v1/pilot-runs/", batch, format="json")
    assert response.status_code == status, response.json()
    error = error_of(response)
    assert error["code"] == code and needle in error["message"] and "item 1" in error["message"]
    assert PilotRun.unscoped_objects.count() == 0


def test_nan_is_rejected(client_a, corpus):
    body = ('[{"corpus": "%s", "mixture": {"alpha": 1}, "size": 10, "metric": "m", "value": NaN}]' % corpus["id"])
    response = client_a.post("/api/v1/pilot-runs/", body, content_type="application/json")
    assert response.status_code == 400 and PilotRun.unscoped_objects.count() == 0


def test_another_tenants_corpus_is_404_and_lists_are_separate(client_a, client_b, corpus):
    response = client_b.post("/api/v1/pilot-runs/", _run(corpus["id"]), format="json")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    client_a.post("/api/v1/pilot-runs/", _run(corpus["id"]), format="json")
    assert client_b.get("/api/v1/pilot-runs/").json()["results"] == []


def test_fitting_fewer_runs_than_a_law_needs_or_an_unknown_law_is_a_400(client_a, corpus):
    """A fit of the tenant's own metric names the field and the minimum; ``law`` names the known laws."""
    bench = upload(client_a, "benchmarks", "b.jsonl", small_corpus(3)).json()
    runs = [_run(corpus["id"], size=s) for s in (1e4, 1e5, 1e6)]
    assert client_a.post("/api/v1/pilot-runs/", runs, format="json").status_code == 201
    fit = {"corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing", "metric": "accuracy"}
    response = client_a.post("/api/v1/jobs/", {"kind": "fit", "params": fit}, format="json")
    assert response.status_code == 400, response.json()
    error = error_of(response)
    assert error["code"] == "not_enough_pilot_runs" and error["detail"]["field"] == "params.metric"
    assert "3 pilot runs" in error["message"] and "at least 4" in error["message"] and error["detail"]["minimum"] == 4
    more = [_run(corpus["id"], size=s) for s in (1e4, 1e5, 1e6, 1e7, 1e8)]  # 8 runs: enough for effective_data
    assert client_a.post("/api/v1/pilot-runs/", more, format="json").status_code == 201
    response = client_a.post("/api/v1/jobs/", {"kind": "fit", "params": {**fit, "law": "mixing_law"}}, format="json")
    error = error_of(response)
    assert response.status_code == 400 and error["detail"] == {"field": "params.metric", "minimum": 10}, error
    assert "8 pilot runs" in error["message"] and "mixing_law law over 3 pools" in error["message"]
    response = client_a.post("/api/v1/jobs/", {"kind": "fit", "params": {**fit, "law": "cubic"}}, format="json")
    assert response.status_code == 400
    assert "effective_data" in str(error_of(response)["detail"]) and "law" in str(error_of(response)["detail"])
