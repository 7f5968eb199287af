"""Streaming ingest: JSONL / CSV / TSV / Parquet (optionally gzip) into Parquet shards.

The file is read once, record by record, and written as shards of at most
``shard_size`` documents (and about ``shard_max_bytes`` of text) into a staging
directory. Memory stays bounded whatever the file size: only a shard's columns and
16 bytes per document (an id digest and its line, for the duplicate check) are held.
Validation is complete before the caller commits: any problem raises
:class:`IngestError` naming the file, line and field, and the caller discards the
staging directory.

Shard schema: ``id`` (string), ``text`` (string), ``source`` (string, nullable),
``meta`` (JSON string of the remaining fields, nullable).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import sys
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.storage import shard_name

FORMATS = ("jsonl", "csv", "tsv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
               ".parquet": "parquet", ".pq": "parquet"}
SHARD_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("meta", pa.string())]
)
_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 20
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class IngestError(ValueError):
    """A problem with an uploaded file; ``code`` is stable, ``detail`` names file/line/field."""

    def __init__(self, code: str, message: str, *, file: str, line: int | None = None, field: str | None = None):
        where = file + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")
        self.code = code
        self.detail = {"file": file, "line": line, "field": field}


@dataclass(frozen=True)
class FieldMapping:
    """Which input fields hold the id, text and source.

    ``id_field``/``source_field`` of ``None`` mean "use ``id``/``source`` when present";
    a field named explicitly is required on every record.
    """

    text_field: str = "text"
    id_field: str | None = None
    source_field: str | None = None

    @property
    def id_name(self) -> str:
        return self.id_field or "id"

    @property
    def source_name(self) -> str:
        return self.source_field or "source"


@dataclass
class ShardInfo:
    index: int
    documents: int
    text_bytes: int
    tokens: int
    file_bytes: int


@dataclass
class IngestResult:
    format: str
    compressed: bool
    documents: int = 0
    text_bytes: int = 0
    tokens: int = 0
    sources: Counter = field(default_factory=Counter)
    shards: list[ShardInfo] = field(default_factory=list)
    #: Whether any record carried an id / a source (else ids were generated, sources left empty).
    ids_read: bool = False
    sources_read: bool = False

    @property
    def stored_bytes(self) -> int:
        return sum(s.file_bytes for s in self.shards)

    def fields_used(self, mapping: FieldMapping) -> dict:
        """The fields the documents were read from: ``text_field``, ``id_field`` and
        ``source_field`` (``None`` where the file had no such field: generated ids, no
        source), and ``defaulted``, the ones whose name came from the defaults."""
        return {"text_field": mapping.text_field,
                "id_field": mapping.id_name if self.ids_read else None,
                "source_field": mapping.source_name if self.sources_read else None,
                "defaulted": [name for name, given in (("id_field", mapping.id_field),
                                                       ("source_field", mapping.source_field)) if given is None]}


def detect_format(filename: str, declared: str | None = None) -> str:
    """The format named by ``declared`` or by the file extension (``.gz`` ignored)."""
    if declared:
        if declared not in FORMATS:
            raise IngestError("unsupported_format", f"format must be one of {', '.join(FORMATS)}; got {declared!r}",
                              file=filename)
        return declared
    name = filename.lower().removesuffix(".gz")
    for extension, fmt in _EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    raise IngestError(
        "unsupported_format",
        "cannot tell the format from the file name; use a .jsonl, .csv, .tsv or .parquet name "
        "(optionally .gz) or pass format=jsonl|csv|tsv|parquet",
        file=filename,
    )


class _Record:
    __slots__ = ("line", "id", "text", "source", "meta")

    def __init__(self, line: int, id_: str | None, text: str, source: str | None, meta: str | None):
        self.line, self.id, self.text, self.source, self.meta = line, id_, text, source, meta


class _ShardWriter:
    """Buffers records and writes ``shard-NNNNN.parquet`` files of bounded size."""

    def __init__(self, out_dir: Path, shard_size: int, shard_max_bytes: int, result: IngestResult):
        self.out_dir, self.shard_size, self.shard_max_bytes, self.result = out_dir, shard_size, shard_max_bytes, result
        self._reset()

    def _reset(self) -> None:
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.sources: list[str | None] = []
        self.metas: list[str | None] = []
        self.bytes = 0
        self.tokens = 0

    def add(self, record: _Record, text_bytes: int, tokens: int) -> None:
        self.ids.append(record.id)
        self.texts.append(record.text)
        self.sources.append(record.source)
        self.metas.append(record.meta)
        self.bytes += text_bytes
        self.tokens += tokens
        if len(self.ids) >= self.shard_size or self.bytes >= self.shard_max_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        index = len(self.result.shards)
        path = self.out_dir / shard_name(index, ".parquet")
        table = pa.Table.from_arrays(
            [pa.array(self.ids, pa.string()), pa.array(self.texts, pa.string()),
             pa.array(self.sources, pa.string()), pa.array(self.metas, pa.string())],
            schema=SHARD_SCHEMA,
        )
        pq.write_table(table, path, compression="zstd")
        self.result.shards.append(ShardInfo(index, len(self.ids), self.bytes, self.tokens, path.stat().st_size))
        self._reset()


class _ByteCounter(io.RawIOBase):
    """Wraps a binary stream, counting bytes and enforcing a byte limit."""

    def __init__(self, raw, limit: int, filename: str, on_progress: Callable[[int], None] | None):
        self.raw, self.limit, self.filename, self.on_progress = raw, limit, filename, on_progress
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        if self.count > self.limit:
            raise IngestError("file_too_large", f"more than {self.limit} bytes (after decompression); "
                              "split the file or ask for a higher limit", file=self.filename)
        if self.on_progress and n:
            self.on_progress(n)
        return n


def _open_binary(path: Path, filename: str, max_bytes: int, compressed: bool,
                 on_progress: Callable[[int], None] | None) -> io.BufferedReader:
    raw = open(path, "rb")
    counted = _ByteCounter(raw, path.stat().st_size + 1, filename, on_progress)
    stream = io.BufferedReader(counted, _READ_CHUNK)
    if compressed:
        stream = io.BufferedReader(_ByteCounter(gzip.GzipFile(fileobj=stream), max_bytes, filename, None), _READ_CHUNK)
    return stream


def _decode(raw: bytes, filename: str, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError("invalid_encoding", f"bytes at offset {exc.start} are not valid UTF-8; "
                          "re-encode the file as UTF-8", file=filename, line=line) from None


def _lines(stream: io.BufferedReader, filename: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield number, _decode(raw, filename, number)


def _to_str(value: object, *, filename: str, line: int, name: str, required: bool) -> str | None:
    if isinstance(value, str):
        return value
    if value is None:
        if required:
            raise IngestError("missing_field", f"field '{name}' is missing or null", file=filename, line=line,
                              field=name)
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    raise IngestError("invalid_field_type", f"field '{name}' must be a string, got {type(value).__name__}",
                      file=filename, line=line, field=name)


def _record_from_mapping(row: dict, line: int, mapping: FieldMapping, filename: str, ids_required: bool) -> _Record:
    if mapping.text_field not in row or row[mapping.text_field] is None:
        raise IngestError("missing_field", f"field '{mapping.text_field}' is missing; every record needs a text "
                          "(set text_field to use another field)", file=filename, line=line, field=mapping.text_field)
    text = row[mapping.text_field]
    if not isinstance(text, str):
        raise IngestError("invalid_field_type", f"field '{mapping.text_field}' must be a string, got "
                          f"{type(text).__name__}", file=filename, line=line, field=mapping.text_field)
    id_ = _to_str(row.get(mapping.id_name), filename=filename, line=line, name=mapping.id_name, required=ids_required)
    if id_ == "":
        raise IngestError("invalid_field_value", f"field '{mapping.id_name}' is empty", file=filename, line=line,
                          field=mapping.id_name)
    source = _to_str(row.get(mapping.source_name), filename=filename, line=line, name=mapping.source_name,
                     required=mapping.source_field is not None)
    rest = {k: v for k, v in row.items() if k not in (mapping.text_field, mapping.id_name, mapping.source_name)}
    meta = json.dumps(rest, ensure_ascii=False, default=str) if rest else None
    return _Record(line, id_, text, source, meta)


def _jsonl_records(stream, filename: str, mapping: FieldMapping) -> Iterator[_Record]:
    ids_required = mapping.id_field is not None
    first = True
    for line, text in _lines(stream, filename):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError("invalid_json", f"invalid JSON at column {exc.colno}: {exc.msg}", file=filename,
                              line=line) from None
        if not isinstance(row, dict):
            raise IngestError("invalid_json", f"expected a JSON object, got {type(row).__name__}", file=filename,
                              line=line)
        if first:
            ids_required = ids_required or mapping.id_name in row
            first = False
        yield _record_from_mapping(row, line, mapping, filename, ids_required)


def _csv_records(stream, filename: str, mapping: FieldMapping, delimiter: str) -> Iterator[_Record]:
    numbered = _lines(stream, filename)
    current = {"line": 0}

    def text_lines() -> Iterator[str]:
        for number, text in numbered:
            current["line"] = number
            yield text

    reader = csv.reader(text_lines(), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise IngestError("invalid_csv", str(exc), file=filename, line=current["line"]) from None
    required = [mapping.text_field] + [f for f in (mapping.id_field, mapping.source_field) if f]
    missing = [name for name in required if name not in header]
    if missing or len(set(header)) != len(header):
        problem = f"lacks column(s) {', '.join(map(repr, missing))}" if missing else "repeats a column name"
        raise IngestError("invalid_csv_header", f"the header {header!r} {problem}; expected a header row naming "
                          f"at least {required!r} (set text_field/id_field/source_field to map other columns)",
                          file=filename, line=1, field=missing[0] if missing else None)
    ids_required = mapping.id_field is not None or mapping.id_name in header
    while True:
        start = current["line"] + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise IngestError("invalid_csv", str(exc), file=filename, line=start) from None
        if not values or values == [""]:
            continue
        if len(values) != len(header):
            raise IngestError("invalid_csv", f"row has {len(values)} fields, the header has {len(header)}",
                              file=filename, line=start)
        yield _record_from_mapping(dict(zip(header, values)), start, mapping, filename, ids_required)


def _parquet_records(path: Path, filename: str, mapping: FieldMapping) -> Iterator[_Record]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError("invalid_parquet", f"not a readable Parquet file ({exc})", file=filename) from None
    names = parquet.schema_arrow.names
    for name in [mapping.text_field] + [f for f in (mapping.id_field, mapping.source_field) if f]:
        if name not in names:
            raise IngestError("missing_field", f"column '{name}' is missing; columns are {names!r}", file=filename,
                              field=name)
    ids_required = mapping.id_field is not None or mapping.id_name in names
    row_number = 0
    try:
        for batch in parquet.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                row_number += 1
                yield _record_from_mapping(row, row_number, mapping, filename, ids_required)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError("invalid_parquet", f"cannot read row group ({exc})", file=filename,
                          line=row_number + 1) from None


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def ingest_file(
    path: str | Path,
    *,
    filename: str,
    out_dir: str | Path,
    mapping: FieldMapping = FieldMapping(),
    declared_format: str | None = None,
    shard_size: int = 10_000,
    shard_max_bytes: int = 64 * 1024**2,
    max_bytes: int = 2 * 1024**3,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Validate ``path`` and write its documents as Parquet shards into ``out_dir``.

    ``filename`` is the user's name for the file (used in errors and for the format).
    ``on_progress(n)`` is called with the number of (compressed) bytes read.
    Raises :class:`IngestError`; on error ``out_dir`` may hold partial shards, which
    the caller discards with its staging directory.
    """
    path, out_dir = Path(path), Path(out_dir)
    size = path.stat().st_size
    if size == 0:
        raise IngestError("empty_file", "the file is empty", file=filename)
    if size > max_bytes:
        raise IngestError("file_too_large", f"{size} bytes is over the limit of {max_bytes} bytes; split the file",
                          file=filename)
    fmt = detect_format(filename, declared_format)
    compressed = _is_gzip(path)
    result = IngestResult(format=fmt, compressed=compressed)
    writer = _ShardWriter(out_dir, shard_size, shard_max_bytes, result)
    digests, lines = array("Q"), array("Q")
    try:
        if fmt == "parquet":
            if compressed:
                plain = out_dir / ".upload.parquet"
                with _open_binary(path, filename, max_bytes, True, on_progress) as source, open(plain, "wb") as sink:
                    shutil.copyfileobj(source, sink, _READ_CHUNK)
                path = plain
            records = _parquet_records(path, filename, mapping)
            stream = None
        else:
            stream = _open_binary(path, filename, max_bytes, compressed, on_progress)
            delimiter = "\t" if fmt == "tsv" else ","
            records = (_jsonl_records(stream, filename, mapping) if fmt == "jsonl"
                       else _csv_records(stream, filename, mapping, delimiter))
        for ordinal, record in enumerate(records):
            if record.id is None:
                record.id = str(ordinal)
            else:
                result.ids_read = True
            result.sources_read = result.sources_read or record.source is not None
            digests.append(int.from_bytes(hashlib.blake2b(record.id.encode(), digest_size=8).digest(), "little"))
            lines.append(record.line)
            text_bytes = len(record.text.encode("utf-8"))
            tokens = len(record.text.split())
            result.documents += 1
            result.text_bytes += text_bytes
            result.tokens += tokens
            result.sources[record.source if record.source is not None else ""] += 1
            writer.add(record, text_bytes, tokens)
        writer.flush()
        if stream is not None:
            stream.close()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IngestError("corrupt_gzip", f"the gzip stream is corrupt or truncated ({exc}); "
                          "re-compress the file", file=filename,
                          line=(lines[-1] + 1) if lines else 1) from None
    finally:
        (out_dir / ".upload.parquet").unlink(missing_ok=True)
    if result.documents == 0:
        raise IngestError("empty_file", "the file holds no documents", file=filename)
    _check_unique_ids(digests, lines, out_dir, result, filename, mapping)
    return result


def _check_unique_ids(digests: array, lines: array, out_dir: Path, result: IngestResult, filename: str,
                      mapping: FieldMapping) -> None:
    """Raise ``duplicate_id`` for the first repeated id (digest collisions are re-checked exactly)."""
    keys = np.frombuffer(digests, dtype=np.uint64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if repeated.size == 0:
        return
    suspects = set(order[repeated].tolist()) | set(order[repeated + 1].tolist())
    first_seen: dict[str, int] = {}
    duplicates: list[tuple[int, int, str]] = []
    ordinal = 0
    for shard in result.shards:
        ids = pq.read_table(out_dir / shard_name(shard.index, ".parquet"), columns=["id"]).column("id").to_pylist()
        for id_ in ids:
            if ordinal in suspects:
                if id_ in first_seen:
                    duplicates.append((lines[ordinal], first_seen[id_], id_))
                else:
                    first_seen[id_] = lines[ordinal]
            ordinal += 1
    if duplicates:
        line, first, id_ = min(duplicates)
        raise IngestError("duplicate_id", f"id {id_!r} repeats the id at line {first} ({len(duplicates)} duplicate "
                          "id(s) in all); ids must be unique", file=filename, line=line, field=mapping.id_name)


def read_shard(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """One shard as an Arrow table (``columns`` to read a subset, e.g. ``["id", "text"]``)."""
    return pq.read_table(path, columns=columns)
