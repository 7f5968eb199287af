"""Uploading per-document predictions for EL2N: format, validation, isolation."""
from __future__ import annotations

import numpy as np
import pytest

from api.core.artifacts import tenant_storage
from api.datasets.models import PredictionSet
from curation.predictions import load_predictions
from curation.storage import Keys
from tests.api.helpers import error_of, files_under, jsonl, small_corpus, upload


@pytest.fixture
def corpus(client_a):
    return upload(client_a, "corpora", "c.jsonl", small_corpus(6), shard_size=4).json()


def _post(client, corpus_id, content: bytes, filename="p.jsonl"):
    return upload(client, f"corpora/{corpus_id}/predictions", filename, content)


def test_multi_run_predictions_round_trip(client_a, corpus, tenant_a):
    lines = [{"id": f"d{i}", "label": i % 3, "probs": [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]} for i in range(5)]
    response = _post(client_a, corpus["id"], jsonl(lines))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["documents"], body["classes"], body["runs"]) == (5, 3, 2)
    listed = client_a.get(f"/api/v1/corpora/{corpus['id']}/predictions/").json()
    assert [p["id"] for p in listed] == [body["id"]]
    path = tenant_storage(tenant_a[0].pk).local_path(Keys.predictions(corpus["id"], body["id"]))
    ids, labels, probs = load_predictions(path)
    assert ids == [f"d{i}" for i in range(5)] and labels.tolist() == [0, 1, 2, 0, 1]
    assert probs.shape == (2, 5, 3)
    np.testing.assert_allclose(probs[1, 4], [0.6, 0.2, 0.2], rtol=1e-6)


BAD = [
    (jsonl([{"id": "d0", "label": 0, "probs": [0.5, 0.6]}]), "invalid_probabilities", 1, "probs"),
    (jsonl([{"id": "d0", "label": 0, "probs": [1.5, -0.5]}]), "invalid_probabilities", 1, "probs"),
    (b'{"id": "d0", "label": 0, "probs": [NaN, 1.0]}\n', "invalid_probabilities", 1, "probs"),
    (jsonl([{"id": "d0", "label": 0, "probs": [0.5, 0.5]}, {"id": "d1", "label": 0, "probs": [0.2, 0.3, 0.5]}]),
     "invalid_probabilities", 2, "probs"),
    (jsonl([{"id": "d0", "label": 2, "probs": [0.5, 0.5]}]), "label_out_of_range", 1, "label"),
    (jsonl([{"id": "nope", "label": 0, "probs": [0.5, 0.5]}]), "unknown_id", 1, "id"),
    (jsonl([{"id": "d0", "label": 0, "probs": [0.5, 0.5]}] * 2), "duplicate_id", 2, "id"),
    (jsonl([{"id": "d0", "probs": [0.5, 0.5]}]), "missing_field", 1, "label"),
    (jsonl([{"id": "d0", "label": 0, "probs": "0.5,0.5"}]), "invalid_field_type", 1, "probs"),
    (b"{oops\n", "invalid_json", 1, None),
    (b"", "empty_file", None, None),
]


@pytest.mark.parametrize("content,code,line,field", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_predictions_are_rejected_and_leave_nothing(client_a, corpus, artifact_root, content, code, line, field):
    before = files_under(artifact_root)
    response = _post(client_a, corpus["id"], content)
    assert response.status_code == 400, response.json()
    error = error_of(response)
    assert (error["code"], error["detail"]["line"], error["detail"]["field"]) == (code, line, field)
    assert files_under(artifact_root) == before and PredictionSet.unscoped_objects.count() == 0


def test_another_tenant_cannot_upload_or_list(client_b, corpus):
    content = jsonl([{"id": "d0", "label": 0, "probs": [0.5, 0.5]}])
    assert _post(client_b, corpus["id"], content).status_code == 404
    assert client_b.get(f"/api/v1/corpora/{corpus['id']}/predictions/").status_code == 404
    assert PredictionSet.unscoped_objects.count() == 0
