"""Per-document scores, stored per shard as Parquet next to the job that made them.

Columns: ``id`` (string), ``score`` (float64), ``kept`` (bool), ``reason`` (string:
``kept`` or why it was dropped, e.g. ``duplicate``, ``pruned_easy``), plus optional
extra float/int columns (``cluster``, ...). Rows are in shard order.
"""
from __future__ import annotations

import io
import json
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.storage import Storage


def write_scores(storage: Storage, name: str, *, ids: list[str], score: np.ndarray, kept: np.ndarray, reason: list[str],
                 **extra: np.ndarray) -> None:
    """Write one shard's scores atomically; every array has one entry per document."""
    columns = {"id": pa.array(ids, pa.string()), "score": pa.array(np.asarray(score, dtype=np.float64)),
               "kept": pa.array(np.asarray(kept, dtype=bool)), "reason": pa.array(reason, pa.string())}
    columns.update({name: pa.array(np.asarray(values)) for name, values in extra.items()})
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"score columns differ in length: {lengths}")
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, compression="zstd")
    storage.write_bytes(name, buffer.getvalue())


def iter_score_jsonl(storage: Storage, names: Iterable[str], *, kept: bool | None = None,
                     batch_size: int = 4096) -> Iterator[bytes]:
    """JSON lines of every document's scores in the stored score shards ``names``, streamed one
    record batch at a time."""
    for name in names:
        with storage.open(name) as source:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_size):
                rows = batch.to_pylist()
                if kept is not None:
                    rows = [row for row in rows if row["kept"] is kept]
                if rows:
                    yield "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
