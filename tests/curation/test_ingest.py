from __future__ import annotations

import json

import pytest

from curation import ingest
from curation.ingest import FieldMapping, IngestError, ingest_file, read_shard


def _write(tmp_path, name, records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_shards_are_bounded_by_documents_and_by_bytes(tmp_path):
    path = _write(tmp_path, "a.jsonl", [{"id": str(i), "text": "x" * 100} for i in range(10)])
    out = tmp_path / "out"
    out.mkdir()
    result = ingest_file(path, filename="a.jsonl", out_dir=out, shard_size=4, shard_max_bytes=250)
    assert [s.documents for s in result.shards] == [3, 3, 3, 1]
    assert sum(read_shard(out / f"shard-0000{i}.parquet").num_rows for i in range(4)) == 10


def test_bom_and_blank_lines_are_tolerated(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\n\n{"text": "b"}\n')
    out = tmp_path / "out"
    out.mkdir()
    assert ingest_file(path, filename="b.jsonl", out_dir=out).documents == 2


def test_digest_collisions_are_not_reported_as_duplicates(tmp_path, monkeypatch):
    class Colliding:
        def __init__(self, data, digest_size):
            pass

        def digest(self):
            return b"\x00" * 8

    monkeypatch.setattr(ingest.hashlib, "blake2b", Colliding)
    path = _write(tmp_path, "c.jsonl", [{"id": "a", "text": "1"}, {"id": "b", "text": "2"}])
    out = tmp_path / "out"
    out.mkdir()
    assert ingest_file(path, filename="c.jsonl", out_dir=out).documents == 2
    path = _write(tmp_path, "d.jsonl", [{"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"id": "a", "text": "3"}])
    with pytest.raises(IngestError) as excinfo:
        ingest_file(path, filename="d.jsonl", out_dir=out)
    assert excinfo.value.code == "duplicate_id" and excinfo.value.detail["line"] == 3


def test_explicit_fields_are_required_and_integers_become_strings(tmp_path):
    path = _write(tmp_path, "e.jsonl", [{"key": 7, "body": "t", "cat": "x"}])
    out = tmp_path / "out"
    out.mkdir()
    ingest_file(path, filename="e.jsonl", out_dir=out,
                mapping=FieldMapping(text_field="body", id_field="key", source_field="cat"))
    table = read_shard(out / "shard-00000.parquet")
    assert table.to_pylist() == [{"id": "7", "text": "t", "source": "x", "meta": None}]
    with pytest.raises(IngestError) as excinfo:
        ingest_file(path, filename="e.jsonl", out_dir=out, mapping=FieldMapping(text_field="body", id_field="doc"))
    assert (excinfo.value.code, excinfo.value.detail["field"]) == ("missing_field", "doc")


def test_progress_reports_every_byte(tmp_path):
    path = _write(tmp_path, "f.jsonl", [{"text": "word " * 50} for _ in range(100)])
    out = tmp_path / "out"
    out.mkdir()
    seen = []
    ingest_file(path, filename="f.jsonl", out_dir=out, on_progress=seen.append)
    assert sum(seen) == path.stat().st_size


def test_column_at_reads_global_positions_across_shards(tmp_path):
    from curation.pipeline import column_at

    source = tmp_path / "c.jsonl"
    source.write_text("".join(f'{{"id": "d{i}", "text": "t{i}"}}\n' for i in range(25)))
    (tmp_path / "shards").mkdir()
    result = ingest_file(source, filename="c.jsonl", out_dir=tmp_path / "shards", shard_size=10)
    paths = [tmp_path / "shards" / f"shard-{s.index:05d}.parquet" for s in result.shards]
    assert column_at(paths, "text", [0, 9, 10, 24]) == ["t0", "t9", "t10", "t24"]
    assert column_at(paths, "id", []) == []


def test_the_fields_used_name_defaults_that_were_read_and_none_for_fields_the_file_lacks(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    both = _write(tmp_path, "g.jsonl", [{"id": "a", "text": "1", "source": "web"}, {"id": "b", "text": "2"}])
    used = ingest_file(both, filename="g.jsonl", out_dir=out).fields_used(FieldMapping())
    assert used == {"text_field": "text", "id_field": "id", "source_field": "source",
                    "defaulted": ["id_field", "source_field"]}
    bare = _write(tmp_path, "h.jsonl", [{"body": "1"}, {"body": "2"}])
    mapping = FieldMapping(text_field="body")
    assert ingest_file(bare, filename="h.jsonl", out_dir=out, mapping=mapping).fields_used(mapping) == {
        "text_field": "body", "id_field": None, "source_field": None, "defaulted": ["id_field", "source_field"]}
    named = FieldMapping(text_field="body", id_field="key", source_field="cat")
    given = _write(tmp_path, "i.jsonl", [{"key": 1, "body": "t", "cat": "x"}])
    assert ingest_file(given, filename="i.jsonl", out_dir=out, mapping=named).fields_used(named) == {
        "text_field": "body", "id_field": "key", "source_field": "cat", "defaulted": []}
