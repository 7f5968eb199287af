from __future__ import annotations

import gzip
import json
import random

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
    from curation.storage import LocalStorage

    source = tmp_path / "c.jsonl"
    source.write_text("".join(f'{{"id": "d{i}", "text": "t{i}"}}\n' for i in range(25)))
    (tmp_path / "shards").mkdir()
    result = ingest_file(source, filename="c.jsonl", out_dir=tmp_path / "shards", shard_size=10)
    storage = LocalStorage(tmp_path)
    names = [f"shards/shard-{s.index:05d}.parquet" for s in result.shards]
    assert column_at(storage, names, "text", [0, 9, 10, 24]) == ["t0", "t9", "t10", "t24"]
    assert column_at(storage, names, "id", []) == []


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


# -- limits on what one upload may hold (issue 10) ------------------------------------------

def _ingest_error(path, **options) -> IngestError:
    out = path.parent / "out"
    out.mkdir(exist_ok=True)
    with pytest.raises(IngestError) as excinfo:
        ingest_file(path, filename=path.name, out_dir=out, **options)
    return excinfo.value


def test_a_line_nested_deeper_than_the_limit_is_invalid_json_naming_file_and_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"text": "a"}\n' + b'{"text": "b", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    error = _ingest_error(path)
    assert (error.code, error.detail) == ("invalid_json", {"file": "deep.jsonl", "line": 2, "field": None})
    assert "nested deeper than 64 levels" in str(error)


@pytest.mark.parametrize("depth,ok", [(5, True), (6, False)])
def test_the_line_depth_limit_is_exact(tmp_path, depth, ok):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}\n")
    out = tmp_path / "out"
    out.mkdir()
    if ok:
        assert ingest_file(path, filename="d.jsonl", out_dir=out, max_json_depth=5).documents == 1
    else:
        assert _ingest_error(path, max_json_depth=5).code == "invalid_json"


def _repeated_lines(count: int) -> tuple[bytes, bytes]:
    line = json.dumps({"text": "x" * 990}).encode() + b"\n"
    return line, line * count


def test_a_gzip_bomb_stops_after_inflating_at_most_the_limit(tmp_path):
    """20 MB of valid lines in 20 KB of gzip: refused once 100x its size (at least 1 MiB) is
    inflated; the shards written before the stop hold no more than that limit."""
    line, plain = _repeated_lines(20_000)
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(plain))
    limit = max(100 * path.stat().st_size, 1024**2)
    assert limit < len(plain) / 4
    error = _ingest_error(path, shard_size=100)
    assert error.code == "file_too_large" and error.detail["line"] is None
    assert "100 times its" in str(error) and str(path.stat().st_size) in str(error)
    shards = sorted((tmp_path / "out").glob("shard-*.parquet"))
    written = sum(read_shard(p).num_rows for p in shards)
    assert 0 < written * len(line) <= limit


def test_the_inflated_size_is_also_capped_absolutely(tmp_path):
    _, plain = _repeated_lines(2000)
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(plain, compresslevel=1))
    error = _ingest_error(path, max_bytes=500_000, max_ratio=10**6)
    assert error.code == "file_too_large" and "500000 bytes" in str(error)


def test_an_ordinary_gzip_file_passes_the_ratio(tmp_path):
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghij") for _ in range(6)) for _ in range(2000)]
    records = [{"id": str(i), "text": " ".join(rng.choice(words) for _ in range(80))} for i in range(3000)]
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    out = tmp_path / "out"
    out.mkdir()
    assert ingest_file(path, filename="c.jsonl.gz", out_dir=out, max_ratio=10).documents == 3000


def test_a_line_over_the_limit_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "' + b"y" * (40 * 1024**2) + b'"}\n')
    read = []
    error = _ingest_error(path, on_progress=read.append)
    assert (error.code, error.detail["line"]) == ("line_too_long", 2)
    assert f"{8 * 1024**2} bytes" in str(error)
    assert sum(read) <= 8 * 1024**2 + 2 * ingest._READ_CHUNK


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_a_line_of_exactly_the_limit_passes_and_one_byte_more_does_not(tmp_path, ending):
    body = b'{"text": "' + b"z" * 90 + b'"}'
    path = tmp_path / "exact.jsonl"
    path.write_bytes(body + ending + b'{"text": "' + b"z" * 91 + b'"}' + ending)
    assert _ingest_error(path, max_line_bytes=len(body) + len(ending)).detail["line"] == 2


def test_a_csv_record_over_several_lines_is_held_to_the_line_limit(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_bytes(b'text\n"' + b"line\n" * 400 + b'"\nok\n')
    error = _ingest_error(path, max_line_bytes=1000)
    assert (error.code, error.detail["line"]) == ("line_too_long", 2)


@pytest.mark.parametrize("name,content,rows", [
    ("a.jsonl", b'{"text": "one"}\r{"text": "two"}\r\r{"text": "three"}', ["one", "two", "three"]),
    ("a.csv", b'id,text\r1,one\r2,"two\rlines"\r3,three\r', ["one", "two\rlines", "three"]),
    ("a.jsonl", b'\xef\xbb\xbf{"text": "one"}\r{"text": "two"}\r', ["one", "two"]),
])
def test_cr_only_line_endings_are_read_as_lines(tmp_path, name, content, rows):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    ingest_file(path, filename=name, out_dir=out)
    assert read_shard(out / "shard-00000.parquet").column("text").to_pylist() == rows


def test_a_lone_cr_inside_an_lf_file_is_not_a_line_break(tmp_path):
    path = tmp_path / "lf.csv"
    path.write_bytes(b'text\n"a\rb"\nc\n')
    out = tmp_path / "out"
    out.mkdir()
    ingest_file(path, filename="lf.csv", out_dir=out)
    assert read_shard(out / "shard-00000.parquet").column("text").to_pylist() == ["a\rb", "c"]


@pytest.mark.parametrize("record,code,field", [
    ({"text": "a", "source": "x\x00y"}, "invalid_field_value", "source"),
    ({"text": "a", "id": "\x00"}, "invalid_field_value", "id"),
    ({"text": "a\ud800"}, "invalid_encoding", "text"),
    ({"text": "a", "source": "\udfff"}, "invalid_encoding", "source"),
    ({"text": "a", "extra": ["ok", "\udc80"]}, "invalid_encoding", "extra"),
])
def test_values_no_database_or_shard_can_hold_are_refused(tmp_path, record, code, field):
    path = tmp_path / "v.jsonl"
    path.write_text('{"text": "fine"}\n' + json.dumps(record) + "\n")
    error = _ingest_error(path)
    assert (error.code, error.detail) == (code, {"file": "v.jsonl", "line": 2, "field": field})


def test_an_integer_too_long_to_read_is_invalid_json(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text('{"text": "a", "n": ' + "7" * 5000 + "}\n")
    error = _ingest_error(path)
    assert (error.code, error.detail["line"]) == ("invalid_json", 1) and "4300" in str(error)


def test_tokens_are_counted_a_slice_at_a_time_as_str_split_counts_them():
    rng = random.Random(1)
    for _ in range(300):
        text = "".join(rng.choice("ab \n\u3000\t\x1c") for _ in range(rng.randint(0, 120)))
        for step in (1, 2, 3, 7, 50):
            assert ingest._tokens(text, step) == len(text.split()), (text, step)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_a_record_without_text_is_refused_naming_its_line_and_field(tmp_path, text):
    path = _write(tmp_path, "w.jsonl", [{"id": "a", "text": "fine"}, {"id": "b", "text": text}])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IngestError) as excinfo:
        ingest_file(path, filename="w.jsonl", out_dir=out)
    assert (excinfo.value.code, excinfo.value.detail["line"], excinfo.value.detail["field"]) == (
        "invalid_field_value", 2, "text")
