"""Streaming ingest: JSONL / CSV / TSV / Parquet (optionally gzip) into Parquet shards.

The file is read once, record by record, and written as shards of at most
``shard_size`` documents (and about ``shard_max_bytes`` of text) into a staging
directory. Memory stays bounded whatever the file size: only a shard's columns and
16 bytes per document (an id digest and its line, for the duplicate check) are held.
Validation is complete before the caller commits: any problem raises
:class:`IngestError` naming the file, line and field, and the caller discards the
staging directory.

Limits (keyword arguments of :func:`ingest_file`; the service sets them from its settings):

- ``max_bytes``: the file, and what a gzip file inflates to;
- ``max_ratio``: a gzip file inflates to at most this many times its compressed size
  (at least 1 MiB, so that small, very repetitive files pass): a gzip bomb is refused
  as ``file_too_large`` after inflating no more than that limit, never held in memory;
- ``max_line_bytes``: one line, its line ending included (a CSV record that spans
  lines, a quoted field with line breaks, is held to the same limit), checked before
  the line is read whole;
- ``max_json_depth``: the nesting of one JSON line (:mod:`curation.jsonlimits`).

Line endings: ``\n`` and ``\r\n``; a file whose first line ends in a lone ``\r``
(classic Mac OS, some spreadsheet exports) is read as CR-only and split on ``\r``.

Values a shard or a database cannot hold are refused, naming the field: a NUL
character in an id or a source (PostgreSQL text cannot hold it, and the source
becomes a database key and a pool name; text and other fields keep it, byte for
byte), and lone UTF-16 surrogates (``"\ud800"`` in JSON) anywhere, which no UTF-8
store can encode.

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

from curation.jsonlimits import MAX_DEPTH, JSONTooDeep, check_depth
from curation.storage import shard_name

FORMATS = ("jsonl", "csv", "tsv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
               ".parquet": "parquet", ".pq": "parquet"}
SHARD_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("meta", pa.string())]
)
_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 20
MAX_BYTES = 2 * 1024**3
MAX_RATIO = 100.0
MAX_LINE_BYTES = 8 * 1024**2
_INFLATE_FLOOR = 1 << 20  # a gzip file may always inflate to 1 MiB, whatever its ratio
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class IngestError(ValueError):
    """A problem with an uploaded file; ``code`` is stable, ``detail`` names file/line/field."""

    def __init__(self, code: str, message: str, *, file: str, line: int | None = None, field: str | None = None):
        # A field name from the upload may hold a lone surrogate: keep the error itself encodable.
        file, field, message = (_printable(value) for value in (file, field, message))
        where = file + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")
        self.code = code
        self.detail = {"file": file, "line": line, "field": field}


def _printable(value: str | None) -> str | None:
    return None if value is None else value.encode("utf-8", "backslashreplace").decode("utf-8")


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
    __slots__ = ("line", "id", "text", "source", "meta", "text_bytes")

    def __init__(self, line: int, id_: str | None, text: str, source: str | None, meta: str | None,
                 text_bytes: int):
        self.line, self.id, self.text, self.source, self.meta = line, id_, text, source, meta
        self.text_bytes = text_bytes


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
    """Wraps a binary stream, counting bytes; it never reads more than ``limit + 1`` bytes from
    it, and raises ``too_large()`` (an :class:`IngestError`) once it has read past ``limit``."""

    def __init__(self, raw, limit: int, too_large: Callable[[], IngestError],
                 on_progress: Callable[[int], None] | None):
        self.raw, self.limit, self.too_large, self.on_progress = raw, limit, too_large, on_progress
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(memoryview(buffer)[: self.limit - self.count + 1]) or 0
        self.count += n
        if self.count > self.limit:
            raise self.too_large()
        if self.on_progress and n:
            self.on_progress(n)
        return n

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


def inflate_limit(compressed_bytes: int, *, max_bytes: int = MAX_BYTES, max_ratio: float = MAX_RATIO) -> int:
    """The most a gzip file of ``compressed_bytes`` may inflate to: ``max_ratio`` times its size,
    at least 1 MiB (small, very repetitive files pass), at most ``max_bytes``.

    >>> inflate_limit(10_000_000), inflate_limit(100), inflate_limit(10**9)
    (1000000000, 1048576, 2147483648)
    """
    return int(min(max_bytes, max(max_ratio * compressed_bytes, _INFLATE_FLOOR)))


def _inflated_too_large(filename: str, size: int, limit: int, max_bytes: int, max_ratio: float) -> IngestError:
    if limit >= max_bytes:
        return IngestError("file_too_large", f"the gzip stream inflates to more than {max_bytes} bytes, the limit; "
                           "split the file or ask for a higher limit", file=filename)
    return IngestError("file_too_large", f"the gzip stream inflates to more than {limit} bytes, over {max_ratio:g} "
                       f"times its {size} compressed bytes (a gzip bomb, or unusually repetitive data); upload it "
                       "uncompressed or ask for a higher compression ratio limit", file=filename)


def _open_binary(path: Path, filename: str, *, compressed: bool, max_bytes: int, max_ratio: float,
                 on_progress: Callable[[int], None] | None) -> io.BufferedReader:
    """The file's bytes, inflated when ``compressed``; reading past :func:`inflate_limit` raises."""
    size = path.stat().st_size
    grew = lambda: IngestError("file_too_large", "the file grew while it was read", file=filename)  # noqa: E731
    stream = io.BufferedReader(_ByteCounter(open(path, "rb"), size + 1, grew, on_progress), _READ_CHUNK)
    if compressed:
        limit = inflate_limit(size, max_bytes=max_bytes, max_ratio=max_ratio)
        inflated = _ByteCounter(gzip.GzipFile(fileobj=stream), limit,
                                lambda: _inflated_too_large(filename, size, limit, max_bytes, max_ratio), None)
        stream = io.BufferedReader(inflated, _READ_CHUNK)
    return stream


def _decode(raw: bytes, filename: str, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError("invalid_encoding", f"bytes at offset {exc.start} are not valid UTF-8; "
                          "re-encode the file as UTF-8", file=filename, line=line) from None


def _line_ending(stream: io.BufferedReader) -> bytes:
    """``b"\\r"`` when the first line ends in a lone CR (a CR-only file), else ``b"\\n"``.

    Decided from the first buffer (1 MiB); a file whose first line is longer is read as LF.
    """
    head = stream.peek(_READ_CHUNK)
    lf, cr = head.find(b"\n"), head.find(b"\r")
    if cr != -1 and (lf == -1 or cr < lf) and cr + 1 < len(head) and head[cr + 1:cr + 2] != b"\n":
        return b"\r"
    return b"\n"


def _raw_lines(stream: io.BufferedReader, max_line_bytes: int) -> Iterator[bytes]:
    """The stream's lines with their endings; one longer than ``max_line_bytes`` is cut after
    ``max_line_bytes + 1`` bytes (the caller refuses it), so no more of it is ever read."""
    if _line_ending(stream) == b"\n":
        readline = stream.readline
        while raw := readline(max_line_bytes + 1):
            yield raw
        return
    pending = b""
    while chunk := stream.read1(_READ_CHUNK):
        *lines, pending = (pending + chunk).split(b"\r")
        for line in lines:
            yield line + b"\r"
        if len(pending) > max_line_bytes:
            yield pending
            return
    if pending:
        yield pending


def _line_too_long(filename: str, line: int, max_line_bytes: int, *, record: bool = False) -> IngestError:
    what = "the CSV record starting on this line is" if record else "the line is"
    return IngestError("line_too_long", f"{what} longer than {max_line_bytes} bytes (line ending included), the "
                       "limit; split the document or ask for a higher limit", file=filename, line=line)


def _lines(stream: io.BufferedReader, filename: str, max_line_bytes: int) -> Iterator[tuple[int, str, int]]:
    """``(line number, text with its line ending, bytes)`` for every line (UTF-8, a leading BOM dropped)."""
    for number, raw in enumerate(_raw_lines(stream, max_line_bytes), start=1):
        if len(raw) > max_line_bytes:
            raise _line_too_long(filename, number, max_line_bytes)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield number, _decode(raw, filename, number), len(raw)


def read_lines(path: str | Path, *, filename: str, max_bytes: int = MAX_BYTES, max_ratio: float = MAX_RATIO,
               max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a text file, gzip or not, within the module's limits (see above).

    Raises :class:`IngestError` (``file_too_large``, ``line_too_long``, ``invalid_encoding``);
    a corrupt gzip stream raises ``gzip.BadGzipFile``, ``EOFError`` or ``zlib.error``.
    """
    path = Path(path)
    with _open_binary(path, filename, compressed=_is_gzip(path), max_bytes=max_bytes, max_ratio=max_ratio,
                      on_progress=None) as stream:
        for number, text, _ in _lines(stream, filename, max_line_bytes):
            yield number, text


def parse_json_line(text: str, *, filename: str, line: int, max_depth: int = MAX_DEPTH):
    """One line's JSON value; ``invalid_json`` naming file and line for bad syntax, nesting deeper
    than ``max_depth`` or an integer too long to read (Python's 4300-digit limit)."""
    try:
        check_depth(text, max_depth)
        return json.loads(text)
    except JSONTooDeep as exc:
        raise IngestError("invalid_json", f"{exc}; the limit is {max_depth} levels", file=filename,
                          line=line) from None
    except json.JSONDecodeError as exc:
        raise IngestError("invalid_json", f"invalid JSON at column {exc.colno}: {exc.msg}", file=filename,
                          line=line) from None
    except ValueError as exc:
        raise IngestError("invalid_json", f"invalid JSON: {exc}", file=filename, line=line) from None


def _utf8_bytes(value: str, *, name: str, filename: str, line: int) -> int:
    """The UTF-8 length of ``value``; ``invalid_encoding`` for a lone surrogate, which no UTF-8 store holds."""
    if value.isascii():
        return len(value)
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise IngestError("invalid_encoding", f"field '{name}' holds a lone surrogate {value[exc.start]!r} at "
                          f"position {exc.start}, which UTF-8 cannot encode (a \\uD800-\\uDFFF escape in JSON "
                          "must be half of a pair)", file=filename, line=line, field=name) from None


def _key(value: str | None, *, name: str, filename: str, line: int) -> str | None:
    """An id or a source, if the databases can hold it: no NUL (PostgreSQL text cannot), valid UTF-8."""
    if value is None:
        return None
    if "\x00" in value:
        raise IngestError("invalid_field_value", f"field '{name}' contains a NUL character (\\u0000) at position "
                          f"{value.index(chr(0))}; ids and sources cannot hold one, remove it", file=filename,
                          line=line, field=name)
    _utf8_bytes(value, name=name, filename=filename, line=line)
    return value


def _meta(rest: dict, *, filename: str, line: int) -> str | None:
    """The remaining fields as a JSON string (``None`` when there are none), UTF-8 encodable."""
    if not rest:
        return None
    meta = json.dumps(rest, ensure_ascii=False, default=str)
    if not meta.isascii():
        try:
            meta.encode("utf-8")
        except UnicodeEncodeError:
            for key, value in rest.items():
                text = json.dumps({key: value}, ensure_ascii=False, default=str)
                _utf8_bytes(text, name=key, filename=filename, line=line)
    return meta


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
    if not text.strip():
        raise IngestError("invalid_field_value", f"field '{mapping.text_field}' is empty or only whitespace; every "
                          "document needs text (remove the record, or set text_field to the field that holds it)",
                          file=filename, line=line, field=mapping.text_field)
    text_bytes = _utf8_bytes(text, name=mapping.text_field, filename=filename, line=line)
    id_ = _to_str(row.get(mapping.id_name), filename=filename, line=line, name=mapping.id_name, required=ids_required)
    if id_ == "":
        raise IngestError("invalid_field_value", f"field '{mapping.id_name}' is empty", file=filename, line=line,
                          field=mapping.id_name)
    id_ = _key(id_, name=mapping.id_name, filename=filename, line=line)
    source = _key(_to_str(row.get(mapping.source_name), filename=filename, line=line, name=mapping.source_name,
                          required=mapping.source_field is not None),
                  name=mapping.source_name, filename=filename, line=line)
    rest = {k: v for k, v in row.items() if k not in (mapping.text_field, mapping.id_name, mapping.source_name)}
    return _Record(line, id_, text, source, _meta(rest, filename=filename, line=line), text_bytes)


def _jsonl_records(lines: Iterator[tuple[int, str, int]], filename: str, mapping: FieldMapping,
                   max_json_depth: int) -> Iterator[_Record]:
    ids_required = mapping.id_field is not None
    first = True
    for line, text, _ in lines:
        if not text.strip():
            continue
        row = parse_json_line(text, filename=filename, line=line, max_depth=max_json_depth)
        if not isinstance(row, dict):
            raise IngestError("invalid_json", f"expected a JSON object, got {type(row).__name__}", file=filename,
                              line=line)
        if first:
            ids_required = ids_required or mapping.id_name in row
            first = False
        yield _record_from_mapping(row, line, mapping, filename, ids_required)


def _csv_records(lines: Iterator[tuple[int, str, int]], filename: str, mapping: FieldMapping, delimiter: str,
                 max_line_bytes: int) -> Iterator[_Record]:
    # ``start``/``bytes``: the line the record being read starts on and the bytes it has taken so far.
    current = {"line": 0, "start": 1, "bytes": 0}

    def text_lines() -> Iterator[str]:
        for number, text, size in lines:
            current["line"] = number
            current["bytes"] += size
            if current["bytes"] > max_line_bytes:
                raise _line_too_long(filename, current["start"], max_line_bytes, record=True)
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
        start = current["start"] = current["line"] + 1
        current["bytes"] = 0
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


def _tokens(text: str, step: int = _READ_CHUNK) -> int:
    """``len(text.split())``, a slice at a time: the tokens of a long text are never all held at
    once (an 8 MiB line of short words would hold ~80 MB of them)."""
    if len(text) <= step:
        return len(text.split())
    count = 0
    for end in range(step, len(text) + step, step):
        count += len(text[end - step:end].split())
        if end < len(text) and not text[end - 1].isspace() and not text[end].isspace():
            count -= 1  # a token across the cut was counted in both slices
    return count


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
    max_bytes: int = MAX_BYTES,
    max_ratio: float = MAX_RATIO,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_json_depth: int = MAX_DEPTH,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Validate ``path`` and write its documents as Parquet shards into ``out_dir``.

    ``filename`` is the user's name for the file (used in errors and for the format).
    ``max_bytes``, ``max_ratio``, ``max_line_bytes`` and ``max_json_depth`` are the
    limits of the module docstring. ``on_progress(n)`` is called with the number of
    (compressed) bytes read. Raises :class:`IngestError`; on error ``out_dir`` may hold
    partial shards, which the caller discards with its staging directory.
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
    limits = {"max_bytes": max_bytes, "max_ratio": max_ratio, "on_progress": on_progress}
    stream = None
    try:
        if fmt == "parquet":
            if compressed:
                plain = out_dir / ".upload.parquet"
                with _open_binary(path, filename, compressed=True, **limits) as source, open(plain, "wb") as sink:
                    shutil.copyfileobj(source, sink, _READ_CHUNK)
                path = plain
            records = _parquet_records(path, filename, mapping)
        else:
            stream = _open_binary(path, filename, compressed=compressed, **limits)
            numbered = _lines(stream, filename, max_line_bytes)
            records = (_jsonl_records(numbered, filename, mapping, max_json_depth) if fmt == "jsonl"
                       else _csv_records(numbered, filename, mapping, "\t" if fmt == "tsv" else ",", max_line_bytes))
        for ordinal, record in enumerate(records):
            if record.id is None:
                record.id = str(ordinal)
            else:
                result.ids_read = True
            result.sources_read = result.sources_read or record.source is not None
            digests.append(int.from_bytes(hashlib.blake2b(record.id.encode(), digest_size=8).digest(), "little"))
            lines.append(record.line)
            tokens = _tokens(record.text)
            result.documents += 1
            result.text_bytes += record.text_bytes
            result.tokens += tokens
            result.sources[record.source if record.source is not None else ""] += 1
            writer.add(record, record.text_bytes, tokens)
        writer.flush()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IngestError("corrupt_gzip", f"the gzip stream is corrupt or truncated ({exc}); "
                          "re-compress the file", file=filename,
                          line=(lines[-1] + 1) if lines else 1) from None
    finally:
        if stream is not None:
            stream.close()
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
