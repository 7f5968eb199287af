"""Uploads through the API: good files in every format, and every bad-input case
rejected with a 400 naming file/line/field while leaving nothing behind."""
from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.datasets.models import Dataset, Shard
from curation.ingest import read_shard
from tests.api.helpers import error_of, files_under, jsonl, small_corpus, upload


def test_jsonl_upload_reports_counts_and_writes_bounded_shards(client_a, artifact_root):
    response = upload(client_a, "corpora", "news.jsonl", small_corpus(30), shard_size=8, name="News")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["documents"] == 30 and body["shard_count"] == 4 and body["name"] == "News"
    assert body["sources"] == {"alpha": 10, "beta": 10, "gamma": 10}
    assert body["tokens"] == 30 * 5
    assert body["text_bytes"] == sum(len(f"document {i} about {s} topics") for i, s in
                                     zip(range(30), ["alpha", "beta", "gamma"] * 10))
    assert [s["documents"] for s in body["shards"]] == [8, 8, 8, 6]
    dataset = Dataset.unscoped_objects.get(pk=body["id"])
    shard_files = [p for p in files_under(artifact_root) if p.endswith(".parquet")]
    assert len(shard_files) == 4 and all(str(dataset.tenant_id) in p for p in shard_files)
    table = read_shard(next(artifact_root.rglob("shard-00003.parquet")))
    assert table.column("id").to_pylist() == [f"d{i}" for i in range(24, 30)]
    assert not list(artifact_root.rglob("staging/*"))


def test_csv_tsv_parquet_and_gzip_with_field_mapping(client_a):
    csv_body = b"doc,body,topic\n1,\"hello, world\",x\n2,\"two\nlines\",y\n"
    response = upload(client_a, "corpora", "a.csv", csv_body, id_field="doc", text_field="body",
                      source_field="topic")
    assert response.status_code == 201, response.json()
    assert response.json()["sources"] == {"x": 1, "y": 1}

    response = upload(client_a, "corpora", "b.tsv.gz", gzip.compress(b"text\tsource\nfirst\ts\nsecond\ts\n"))
    assert response.status_code == 201, response.json()
    assert response.json()["documents"] == 2 and response.json()["compressed"] is True

    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["x y", "z"], "lang": ["en", "de"]}), buffer)
    response = upload(client_a, "benchmarks", "c.parquet", buffer.getvalue())
    assert response.status_code == 201, response.json()
    assert response.json()["kind"] == "benchmark" and response.json()["tokens"] == 3


def test_ids_are_generated_when_absent_and_metadata_is_kept(client_a, artifact_root):
    response = upload(client_a, "corpora", "noids.jsonl", jsonl([{"text": "a", "lang": "en"}, {"text": "b"}]))
    assert response.status_code == 201
    table = read_shard(next(artifact_root.rglob("shard-00000.parquet")))
    assert table.column("id").to_pylist() == ["0", "1"]
    assert table.column("meta").to_pylist() == ['{"lang": "en"}', None]


def _truncated_gzip() -> bytes:
    data = gzip.compress(jsonl([{"id": str(i), "text": f"t{i} " * 20} for i in range(3000)]))
    return data[: len(data) // 2]


BAD_INPUTS = [
    ("bad.jsonl", b'{"id": "1", "text": "ok"}\n{"id": "2", "text": "unterminated}\n', {}, "invalid_json", 2, None),
    ("bad.jsonl", b'{"id": "1", "text": "ok"}\n{"id": "2"}\n', {}, "missing_field", 2, "text"),
    ("bad.jsonl", b'{"id": "1", "text": ["not", "a", "string"]}\n', {}, "invalid_field_type", 1, "text"),
    ("bad.jsonl", b'{"id": "1", "text": "ok"}\n{"id": "2", "text": "caf\xe9"}\n', {}, "invalid_encoding", 2, None),
    ("bad.jsonl", jsonl([{"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"id": "a", "text": "3"}]), {},
     "duplicate_id", 3, "id"),
    ("bad.jsonl", b"", {}, "empty_file", None, None),
    ("bad.jsonl", b"\n\n  \n", {}, "empty_file", None, None),
    ("bad.jsonl.gz", _truncated_gzip(), {}, "corrupt_gzip", 1, None),
    ("bad.csv", b"id,body\n1,hello\n", {}, "invalid_csv_header", 1, "text"),
    ("bad.csv", b"id,text\n1,hello\n2,too,many\n", {}, "invalid_csv", 3, None),
    ("bad.jsonl", jsonl([{"text": "a"}, {"text": "b", "src": 1}]), {"source_field": "src"}, "missing_field", 1,
     "src"),
    ("bad.txt", b"hello", {}, "unsupported_format", None, None),
    ("bad.parquet", b"PAR1 but not really", {}, "invalid_parquet", None, None),
]


@pytest.mark.parametrize("filename,content,form,code,line,field", BAD_INPUTS,
                         ids=[f"{case[3]}-{i}" for i, case in enumerate(BAD_INPUTS)])
def test_bad_input_is_a_400_naming_file_line_field_and_leaves_nothing(
    client_a, artifact_root, filename, content, form, code, line, field
):
    response = upload(client_a, "corpora", filename, content, **form)
    assert response.status_code == 400, response.json()
    error = error_of(response)
    assert error["code"] == code
    assert error["detail"]["file"] == filename
    assert error["detail"]["line"] == line
    assert error["detail"]["field"] == field
    assert filename in error["message"]
    if line is not None:
        assert f"line {line}" in error["message"]
    assert files_under(artifact_root) == []
    assert Dataset.unscoped_objects.count() == 0 and Shard.unscoped_objects.count() == 0


def test_file_over_the_size_limit(client_a, artifact_root, settings):
    settings.UPLOAD_MAX_BYTES = 100
    response = upload(client_a, "corpora", "big.jsonl", small_corpus(20))
    assert response.status_code == 400
    assert error_of(response)["code"] == "file_too_large"
    assert files_under(artifact_root) == [] and Dataset.unscoped_objects.count() == 0


def test_gzip_bomb_is_stopped_by_the_decompressed_limit(client_a, artifact_root, settings):
    settings.UPLOAD_MAX_BYTES = 50_000
    bomb = gzip.compress(jsonl([{"text": "x" * 1000}]) * 200)
    assert len(bomb) < 50_000
    response = upload(client_a, "corpora", "bomb.jsonl.gz", bomb)
    assert response.status_code == 400 and error_of(response)["code"] == "file_too_large"
    assert files_under(artifact_root) == []


def test_missing_file_field_is_a_validation_error(client_a):
    response = client_a.post("/api/v1/corpora/", {"name": "x"}, format="multipart")
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"
    assert "file" in error_of(response)["detail"]["fields"]


def test_storage_and_document_quotas(client_a, tenant_a, artifact_root):
    tenant = tenant_a[0]
    tenant.max_documents = 25
    tenant.save()
    assert upload(client_a, "corpora", "a.jsonl", small_corpus(20)).status_code == 201
    response = upload(client_a, "corpora", "b.jsonl", small_corpus(10))
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "quota_exceeded" and error["detail"] == {
        "quota": "documents", "used": 20, "requested": 10, "limit": 25}
    assert Dataset.unscoped_objects.count() == 1
    assert len([p for p in files_under(artifact_root) if p.endswith(".parquet")]) == 1


def test_list_get_and_delete_removes_artifacts(client_a, artifact_root, django_capture_on_commit_callbacks):
    corpus = upload(client_a, "corpora", "a.jsonl", small_corpus(12), shard_size=5).json()
    upload(client_a, "benchmarks", "b.jsonl", small_corpus(3))
    listing = client_a.get("/api/v1/corpora/").json()
    assert [d["id"] for d in listing["results"]] == [corpus["id"]]
    detail = client_a.get(f"/api/v1/corpora/{corpus['id']}/").json()
    assert detail["shard_count"] == 3 and len(detail["shards"]) == 3
    assert any(corpus["id"] in p for p in files_under(artifact_root))
    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.delete(f"/api/v1/corpora/{corpus['id']}/").status_code == 204
    assert not any(corpus["id"] in p for p in files_under(artifact_root))
    assert client_a.get(f"/api/v1/corpora/{corpus['id']}/").status_code == 404
    assert Shard.unscoped_objects.filter(dataset_id=corpus["id"]).count() == 0


@pytest.mark.parametrize("valid", [True, False])
def test_large_uploads_spool_to_disk_and_leave_no_temp_file(client_a, artifact_root, settings, tmp_path, valid):
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    records = [{"id": str(i), "text": "word " * 150} for i in range(3000)]
    if not valid:
        records[-1] = {"id": "last"}
    content = jsonl(records)
    assert len(content) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    with open(tmp_path / "big.jsonl", "wb") as handle:
        handle.write(content)
    with open(tmp_path / "big.jsonl", "rb") as handle:
        response = client_a.post("/api/v1/corpora/", {"file": handle}, format="multipart")
    if valid:
        assert response.status_code == 201 and response.json()["documents"] == 3000
    else:
        assert response.status_code == 400 and error_of(response)["detail"]["line"] == 3000
        assert files_under(artifact_root) == []
    assert list(spool.iterdir()) == []
