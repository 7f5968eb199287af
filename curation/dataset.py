"""A mixture's training-ready dataset: the selected documents themselves, repeats expanded, shuffled.

The manifest (:mod:`curation.manifest`) says which documents to train on and how often; this
writes what a dataloader reads: Parquet shards of ``id, text, source, pool, repeat_index``
(one row per sample shown; a document repeated ``r`` times has rows with ``repeat_index``
0..r-1), ``rows_per_shard`` rows a shard (100k by default), plus ``dataset.json`` (what the
dataset is: weights, budget, seed, rows, shards, contamination counts, the performance model
and its prediction). The shards load unchanged with ``datasets.load_dataset("parquet",
data_files=...)`` and with datatrove's ``ParquetReader``.

The order is a seeded shuffle that never materialises the whole expanded list: output position
``p`` takes expanded row ``(a p + b) mod N`` (``N`` rows in manifest order, ``a`` coprime with
``N``: a permutation), then each shard's rows are shuffled among themselves with a seed of their
own. Every shard is written from its own slice (memory bounded by a shard plus the manifest), and
a shard already written is kept when the step runs again (the same seed gives the same bytes).
"""
from __future__ import annotations

import io
import json
import math
from typing import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.storage import Storage

#: Rows a shard: large enough for a dataloader's sequential reads, small enough to shuffle in memory.
ROWS_PER_SHARD = 100_000
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("pool", pa.string()),
                    ("repeat_index", pa.int64())])


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def affine_permutation(rows: int, seed: int) -> tuple[int, int]:
    """``(a, b)`` with ``gcd(a, rows) = 1``: ``p -> (a p + b) mod rows`` permutes ``range(rows)``.

    ``a`` is drawn near ``rows`` times a random fraction, so that neighbouring positions come from
    far-apart rows of the manifest (pools are contiguous there)."""
    rng = np.random.default_rng([seed, 0x5EED])
    if rows <= 1:
        return 1, 0
    a = int(rng.integers(max(1, rows // 3), max(2, rows - 1))) | 1
    while math.gcd(a, rows) != 1:
        a += 2
    return a % rows or 1, int(rng.integers(0, rows))


def expanded_rows(repeats: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For expanded rows ``positions`` (k,), the manifest entry and repeat index of each (both (k,))."""
    ends = np.cumsum(repeats)
    entry = np.searchsorted(ends, positions, side="right")
    return entry, positions - (ends[entry] - repeats[entry])


def write_dataset(storage: Storage, prefix: str, *, selection: Mapping[str, np.ndarray], ids: Sequence[str],
                  read_rows: Callable[[np.ndarray], Mapping[str, Sequence]], seed: int, about: Mapping,
                  rows_per_shard: int = ROWS_PER_SHARD) -> dict:
    """Write the shards and ``dataset.json`` under ``prefix``; returns ``dataset.json``'s content.

    ``selection``: the manifest's entries as :func:`curation.manifest.select_documents` gives them
    (``position`` (m,) in the corpus, ``pool``, ``repeats``); ``ids``: the corpus's document ids;
    ``read_rows(sorted positions)`` returns the ``text`` and ``source`` columns of those documents;
    ``about`` goes into ``dataset.json``.
    """
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1; got {rows_per_shard}")
    positions = np.asarray(selection["position"], dtype=np.int64)
    repeats = np.asarray(selection["repeats"], dtype=np.int64)
    pools = np.asarray(selection["pool"], dtype=object)
    entry_ids = np.asarray([ids[i] for i in positions], dtype=object)
    total = int(repeats.sum())
    a, b = affine_permutation(total, seed)
    shards = []
    for index in range(max(1, math.ceil(total / rows_per_shard))):
        start, stop = index * rows_per_shard, min(total, (index + 1) * rows_per_shard)
        name = f"{prefix}/{shard_name(index)}"
        shards.append({"name": shard_name(index), "rows": stop - start})
        if storage.exists(name):
            continue
        output = np.arange(start, stop, dtype=np.int64)
        output = np.random.default_rng([seed, index]).permutation(output)
        if total < 2**31:  # a p < 2^62: in int64
            rows = (a * output + b) % total if total else output
        else:  # a, p < N <= MAX_BUDGET (1e15): the product needs 100 bits, so Python ints
            rows = np.array([(a * int(p) + b) % total for p in output], dtype=np.int64)
        entry, repeat_index = expanded_rows(repeats, rows)
        wanted = np.unique(positions[entry])
        columns = read_rows(wanted)
        at = np.searchsorted(wanted, positions[entry])
        texts = np.asarray(columns["text"], dtype=object)[at]
        sources = np.asarray(columns["source"], dtype=object)[at]
        table = pa.table({"id": pa.array(entry_ids[entry].tolist(), pa.string()), "text": pa.array(texts.tolist(), pa.string()),
                          "source": pa.array(sources.tolist(), pa.string()),
                          "pool": pa.array(pools[entry].tolist(), pa.string()),
                          "repeat_index": pa.array(repeat_index, pa.int64())}, schema=SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        storage.write_bytes(name, buffer.getvalue())
    content = {**about, "rows": total, "unique_documents": int(len(entry_ids)), "seed": seed,
               "rows_per_shard": rows_per_shard, "shards": shards, "columns": SCHEMA.names,
               "shuffle": "affine permutation (a p + b) mod rows, then a seeded shuffle within each shard"}
    storage.write_bytes(f"{prefix}/dataset.json", json.dumps(content, indent=1).encode())
    return content
