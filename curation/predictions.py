"""Per-example model predictions uploaded for EL2N scoring (Paul et al. 2021).

Upload format: JSON lines (optionally gzip), one per corpus document::

    {"id": "doc-17", "label": 2, "probs": [0.1, 0.2, 0.7]}
    {"id": "doc-18", "label": 0, "probs": [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]]}

``label`` is the integer class, ``probs`` the model's class probabilities after
softmax: one row, or one row per training run (EL2N averages over runs). Every line
must have the same number of classes and runs; each row must be finite, non-negative
and sum to 1 (within 1e-3). Ids must belong to the corpus and appear once; documents
without a line are left unscored.

Stored as Parquet: ``id`` (string), ``label`` (int32), ``probs`` (runs x classes,
float32, flattened row-major) plus the shape in the file metadata.
"""
from __future__ import annotations

import gzip
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.ingest import MAX_LINE_BYTES, MAX_RATIO, IngestError, parse_json_line, read_lines
from curation.jsonlimits import MAX_DEPTH

_TOLERANCE = 1e-3


@dataclass
class PredictionSummary:
    documents: int
    classes: int
    runs: int


def _probability_rows(value, *, filename: str, line: int) -> list[list[float]]:
    if not isinstance(value, list) or not value:
        raise IngestError("invalid_field_type", "field 'probs' must be a non-empty list of numbers or of lists",
                          file=filename, line=line, field="probs")
    rows = value if isinstance(value[0], list) else [value]
    for row in rows:
        if not isinstance(row, list) or not row or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) for p in row
        ):
            raise IngestError("invalid_field_type", "field 'probs' must hold numbers", file=filename, line=line,
                              field="probs")
        try:
            row = [float(p) for p in row]
        except OverflowError:  # an integer of hundreds of digits
            raise IngestError("invalid_probabilities", "a probability is an integer too large to be a number "
                              "in [0, 1]", file=filename, line=line, field="probs") from None
        if not all(math.isfinite(p) and p >= 0 for p in row):
            raise IngestError("invalid_probabilities", "probabilities must be finite and non-negative",
                              file=filename, line=line, field="probs")
        total = sum(row)
        if abs(total - 1.0) > _TOLERANCE:
            raise IngestError("invalid_probabilities", f"a row of probabilities sums to {total:.6g}, not 1 "
                              "(upload softmax outputs, not logits)", file=filename, line=line, field="probs")
    return rows


def ingest_predictions(
    path: Path,
    *,
    filename: str,
    is_known_id: Callable[[str], bool],
    out_path: Path,
    max_bytes: int,
    max_ratio: float = MAX_RATIO,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_json_depth: int = MAX_DEPTH,
) -> PredictionSummary:
    """Validate an uploaded predictions file and write it as Parquet to ``out_path``.

    ``is_known_id(id)`` says whether the corpus holds that document. The limits are
    those of corpus uploads (:mod:`curation.ingest`). Raises
    :class:`curation.ingest.IngestError` naming file, line and field.
    """
    size = path.stat().st_size
    if size == 0:
        raise IngestError("empty_file", "the file is empty", file=filename)
    if size > max_bytes:
        raise IngestError("file_too_large", f"{size} bytes is over the limit of {max_bytes} bytes", file=filename)
    ids: list[str] = []
    labels: list[int] = []
    probs: list[np.ndarray] = []
    seen: dict[str, int] = {}
    shape: tuple[int, int] | None = None
    line = 0
    try:
        for line, text in read_lines(path, filename=filename, max_bytes=max_bytes, max_ratio=max_ratio,
                                     max_line_bytes=max_line_bytes):
            if not text.strip():
                continue
            row = parse_json_line(text, filename=filename, line=line, max_depth=max_json_depth)
            if not isinstance(row, dict):
                raise IngestError("invalid_json", "expected a JSON object", file=filename, line=line)
            for name in ("id", "label", "probs"):
                if name not in row:
                    raise IngestError("missing_field", f"field '{name}' is missing", file=filename, line=line,
                                      field=name)
            id_ = row["id"]
            if isinstance(id_, int) and not isinstance(id_, bool):
                id_ = str(id_)
            if not isinstance(id_, str):
                raise IngestError("invalid_field_type", "field 'id' must be a string", file=filename,
                                  line=line, field="id")
            if not is_known_id(id_):
                raise IngestError("unknown_id", f"id {id_!r} is not a document of this corpus", file=filename,
                                  line=line, field="id")
            if id_ in seen:
                raise IngestError("duplicate_id", f"id {id_!r} repeats line {seen[id_]}", file=filename,
                                  line=line, field="id")
            seen[id_] = line
            rows = _probability_rows(row["probs"], filename=filename, line=line)
            current = (len(rows), len(rows[0]))
            if any(len(r) != current[1] for r in rows) or (shape is not None and current != shape):
                raise IngestError("invalid_probabilities", f"probs has shape {current}, earlier lines have "
                                  f"{shape or current}; every line needs the same runs x classes",
                                  file=filename, line=line, field="probs")
            shape = current
            label = row["label"]
            if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < shape[1]:
                raise IngestError("label_out_of_range", f"label must be an integer class in [0, {shape[1]}); "
                                  f"got {label!r}", file=filename, line=line, field="label")
            ids.append(id_)
            labels.append(label)
            probs.append(np.asarray(rows, dtype=np.float32).ravel())
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IngestError("corrupt_gzip", f"the gzip stream is corrupt or truncated ({exc})", file=filename,
                          line=line + 1) from None
    if not ids:
        raise IngestError("empty_file", "the file holds no predictions", file=filename)
    runs, classes = shape
    table = pa.table({"id": pa.array(ids, pa.string()), "label": pa.array(labels, pa.int32()),
                      "probs": pa.array(probs, pa.list_(pa.float32()))})
    table = table.replace_schema_metadata({"runs": str(runs), "classes": str(classes)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    Path(out_path).write_bytes(buffer.getvalue())  # a staging file: the service commits it
    return PredictionSummary(documents=len(ids), classes=classes, runs=runs)


def load_predictions(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(ids, labels (n,), probs (runs, n, classes))`` from a stored predictions file."""
    table = pq.read_table(path)
    meta = table.schema.metadata
    runs, classes = int(meta[b"runs"]), int(meta[b"classes"])
    flat = np.asarray(table.column("probs").combine_chunks().flatten(), dtype=np.float32)
    probs = flat.reshape(len(table), runs, classes).transpose(1, 0, 2)
    return table.column("id").to_pylist(), np.asarray(table.column("label"), dtype=np.int64), probs
