"""A mixture's manifest: the concrete documents to train on and how often to show each.

Within a pool the documents with the highest quality score are taken first (a seeded
random order when the pool has no score); a pool shown ``m`` times over ``u`` chosen
documents repeats each ``m // u`` times and the first ``m % u`` of them once more, so
the repeats add up to the pool's share of the budget.

Stored as Parquet (``id`` string, ``pool`` string, ``repeats`` int64), one row per
unique document, pools in the mixture's order.
"""
from __future__ import annotations

import io
import json
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.laws import Allocation
from curation.storage import Storage


def select_documents(pool_of_document: Sequence[str | None], allocation: Allocation, *, quality=None,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Per pool, the document positions chosen (best quality first) and their repeats.

    ``pool_of_document`` (n,) names each document's pool (``None``: excluded, e.g. pruned);
    ``quality`` (n,) optional, higher is better. Returns ``{"position", "pool", "repeats"}`` arrays.
    """
    pools = np.asarray(pool_of_document, dtype=object)
    rng = np.random.default_rng(seed)
    positions, names, repeats = [], [], []
    for name, unique, shown in zip(allocation.pools, allocation.unique_used, allocation.shown):
        if unique <= 0:
            continue
        members = np.flatnonzero(pools == name)
        if quality is not None:
            order = members[np.argsort(-np.asarray(quality, dtype=np.float64)[members], kind="stable")]
        else:
            order = rng.permutation(members)
        chosen = order[:unique]
        total = max(int(round(shown)), len(chosen))
        counts = np.full(len(chosen), total // len(chosen), dtype=np.int64)
        counts[: total % len(chosen)] += 1
        positions.append(chosen)
        names.extend([name] * len(chosen))
        repeats.append(counts)
    if not positions:
        return {"position": np.zeros(0, dtype=np.int64), "pool": np.zeros(0, dtype=object),
                "repeats": np.zeros(0, dtype=np.int64)}
    return {"position": np.concatenate(positions), "pool": np.array(names, dtype=object),
            "repeats": np.concatenate(repeats)}


def write_manifest(storage: Storage, name: str, *, ids: Sequence[str], selection: dict[str, np.ndarray]) -> int:
    """Write the manifest of ``selection`` (from :func:`select_documents`) atomically; returns its rows."""
    table = pa.table({"id": pa.array([ids[i] for i in selection["position"]], pa.string()),
                      "pool": pa.array(list(selection["pool"]), pa.string()),
                      "repeats": pa.array(selection["repeats"], pa.int64())})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    storage.write_bytes(name, buffer.getvalue())
    return table.num_rows


def iter_manifest_jsonl(source, *, batch_size: int = 8192) -> Iterator[bytes]:
    """JSON lines of the manifest (a path or a binary file), one record batch at a time."""
    for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_size):
        yield "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in batch.to_pylist()).encode()
