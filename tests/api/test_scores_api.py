"""Streaming per-document scores: GET /api/v1/corpora/{id}/scores/?metric=..."""
from __future__ import annotations

import json

import numpy as np
import pytest
from django.utils import timezone

from api.core.artifacts import tenant_storage
from api.jobs.models import Job
from curation.ingest import read_shard
from curation.scores import write_scores
from curation.storage import Keys
from tests.api.helpers import error_of, small_corpus, upload


@pytest.fixture
def scored(client_a, tenant_a, artifact_root):
    """A corpus of 3 shards and a finished job that wrote 'demo' scores for it."""
    corpus = upload(client_a, "corpora", "c.jsonl", small_corpus(25), shard_size=10).json()
    job = Job.unscoped_objects.create(
        tenant=tenant_a[0], kind="embed", params={"corpus": corpus["id"]}, plan=[], stage="done",
        status=Job.Status.SUCCEEDED, finished_at=timezone.now(), result={"score_metrics": ["demo"]},
    )
    store = tenant_storage(tenant_a[0].pk)
    for index in range(3):
        ids = read_shard(store.local_path(Keys.shard(corpus["id"], index)), ["id"]).column("id").to_pylist()
        numbers = np.array([int(i[1:]) for i in ids])
        write_scores(store, Keys.scores(job.pk, "demo", index), ids=ids, score=numbers / 100,
                     kept=numbers % 2 == 0, reason=["kept" if n % 2 == 0 else "pruned_easy" for n in numbers],
                     cluster=numbers % 3)
    return corpus, job


def _lines(response) -> list[dict]:
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_scores_stream_every_document_in_order(client_a, scored):
    corpus, job = scored
    response = client_a.get(f"/api/v1/corpora/{corpus['id']}/scores/?metric=demo")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    assert response["X-Scores-Job"] == str(job.pk)
    rows = _lines(response)
    assert [r["id"] for r in rows] == [f"d{i}" for i in range(25)]
    assert rows[7] == {"id": "d7", "score": 0.07, "kept": False, "reason": "pruned_easy", "cluster": 1}


def test_scores_filter_by_kept(client_a, scored):
    corpus, _ = scored
    rows = _lines(client_a.get(f"/api/v1/corpora/{corpus['id']}/scores/?metric=demo&kept=true"))
    assert [r["id"] for r in rows] == [f"d{i}" for i in range(0, 25, 2)]


def test_unknown_metric_is_a_clear_404_and_metric_is_required(client_a, scored):
    corpus, _ = scored
    response = client_a.get(f"/api/v1/corpora/{corpus['id']}/scores/?metric=betr")
    assert response.status_code == 404 and error_of(response)["code"] == "no_scores"
    response = client_a.get(f"/api/v1/corpora/{corpus['id']}/scores/")
    assert response.status_code == 400 and error_of(response)["code"] == "validation_error"


def test_another_tenant_cannot_read_scores(client_b, scored):
    corpus, job = scored
    response = client_b.get(f"/api/v1/corpora/{corpus['id']}/scores/?metric=demo&job={job.pk}")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
