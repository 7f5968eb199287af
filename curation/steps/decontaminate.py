"""Decontamination steps (DESIGN.md 3.7): find the corpus documents that hold benchmark examples.

Two stages. ``contamination_scan``, one unit per corpus shard: the n-gram pass against every
benchmark (:class:`curation.decontamination.NgramIndex`), and the exact semantic pass over the
shard's embeddings when the corpus has no FAISS store. ``contamination``, one unit: the
semantic pass through the store when there is one (:func:`curation.stores.open_store`), then
one Parquet per shard under :meth:`Keys.contamination` (``position`` in the shard, ``id``,
``benchmark``, ``item`` position, ``item_id``, ``kind``, ``span``, ``similarity``; one row per
document, benchmark and kind) and the counts per benchmark. Later stages of the run (BETR, the
pools of fit and mixture) read :func:`contaminated_mask` and leave those documents out.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from curation.decontamination import NGRAM, SEMANTIC, NgramIndex, SemanticMatches, semantic_matches, store_matches
from curation.embedders import embedder_key
from curation.pipeline import load_embeddings, read_stored, write_stored
from curation.steps import Context, DatasetRef
from curation.steps.data import dataset_column, dataset_embeddings
from curation.storage import Keys, Storage
from curation.stores import open_store

SCAN_STAGE = "contamination_scan"
STAGE = "contamination"
EXAMPLES = 10  # matches shown in a job's result
_SCHEMA = pa.schema([("position", pa.int64()), ("id", pa.string()), ("benchmark", pa.string()),
                     ("item", pa.int64()), ("item_id", pa.string()), ("kind", pa.string()),
                     ("span", pa.string()), ("similarity", pa.float32())])
_INDEXES: OrderedDict = OrderedDict()  # (benchmark id, n) -> NgramIndex: benchmarks are immutable
_CACHED_INDEXES = 4


@dataclass(frozen=True)
class ContaminationOptions:
    """``ngram`` words per n-gram; ``semantic`` the cosine at or above which a document is a
    near-duplicate of an example (None: no semantic pass); ``enabled`` False skips both."""

    ngram: int = NGRAM
    semantic: float | None = SEMANTIC
    enabled: bool = True

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "ContaminationOptions":
        return cls(**(data or {}))


@dataclass(frozen=True)
class DecontaminateParams:
    corpus: DatasetRef
    benchmarks: tuple[DatasetRef, ...]
    embedder: str
    options: ContaminationOptions = ContaminationOptions()


def _scan_key(ctx: Context, index: int) -> str:
    return Keys.job_file(ctx.run_id, f"contamination-scan-{index:05d}.parquet")


def _ngram_index(ctx: Context, benchmark: DatasetRef, n: int) -> NgramIndex:
    key = (benchmark.id, n)
    if key not in _INDEXES:
        _INDEXES[key] = NgramIndex.build(dataset_column(ctx, benchmark, "text"), n=n)
        while len(_INDEXES) > _CACHED_INDEXES:
            _INDEXES.popitem(last=False)
    _INDEXES.move_to_end(key)
    return _INDEXES[key]


def _store(ctx: Context, params: DecontaminateParams):
    if params.options.semantic is None:
        return None
    return open_store(ctx.storage, Keys.vector_store(params.corpus.id, embedder_key(ctx.embedder(params.embedder))))


def _rows(ids: list, benchmark: DatasetRef, item_ids: list, kind: str, positions, items, spans, similarity) -> dict:
    return {"position": list(map(int, positions)), "id": [ids[p] for p in positions],
            "benchmark": [benchmark.id] * len(positions), "item": list(map(int, items)),
            "item_id": [item_ids[i] for i in items], "kind": [kind] * len(positions), "span": list(spans),
            "similarity": list(similarity)}


def _write(storage: Storage, key: str, parts: list[dict]) -> None:
    columns = {name: [v for part in parts for v in part[name]] for name in _SCHEMA.names}
    write_stored(storage, key, pa.table(columns, schema=_SCHEMA))


def contamination_scan(ctx: Context, index: int, params: DecontaminateParams) -> dict:
    """Shard ``index`` against every benchmark: n-gram matches, and exact semantic ones without a store."""
    shard = read_stored(ctx.storage, Keys.shard(params.corpus.id, index), ["id", "text"])
    ids, texts = shard.column("id").to_pylist(), shard.column("text").to_pylist()
    threshold = params.options.semantic
    exact = threshold is not None and _store(ctx, params) is None
    if exact:
        embedder = ctx.embedder(params.embedder)
        vectors = load_embeddings(ctx.storage.local_path(Keys.embedding(params.corpus.id, embedder_key(embedder),
                                                                        index)))
    parts, counts = [], {}
    for benchmark in params.benchmarks:
        item_ids = dataset_column(ctx, benchmark, "id")
        found = _ngram_index(ctx, benchmark, params.options.ngram).find(texts)
        parts.append(_rows(ids, benchmark, item_ids, "ngram", [m.document for m in found], [m.item for m in found],
                           [m.span for m in found], [None] * len(found)))
        counts[benchmark.id] = {"ngram": len(found)}
        if exact:
            near = semantic_matches(vectors, dataset_embeddings(ctx, benchmark, params.embedder), threshold)
            parts.append(_rows(ids, benchmark, item_ids, "semantic", near.document, near.item,
                               [None] * len(near.document), near.similarity.tolist()))
            counts[benchmark.id]["semantic"] = len(near.document)
    _write(ctx.storage, _scan_key(ctx, index), parts)
    return {"shard": index, "documents": len(ids), "semantic_search": "exact" if exact else None,
            "benchmarks": counts}


def contamination_summary(ctx: Context, index: int, params: DecontaminateParams) -> dict:
    """Merge the shards' scans with the store's semantic matches; write the run's contamination files."""
    corpus, options = params.corpus, params.options
    scans = ctx.outputs(SCAN_STAGE)
    from_store = options.semantic is not None and any(s["semantic_search"] is None for s in scans)
    per_shard: list[list[dict]] = [[] for _ in range(corpus.shard_count)]
    offsets = np.concatenate([[0], np.cumsum(corpus.shard_documents)]).astype(np.int64)
    store = _store(ctx, params) if from_store else None
    if from_store and store is None:
        raise RuntimeError("the corpus's vector store disappeared during decontamination; run the job again")
    if store is not None:
        ids = dataset_column(ctx, corpus, "id")
        for benchmark in params.benchmarks:
            near: SemanticMatches = store_matches(store, dataset_embeddings(ctx, benchmark, params.embedder),
                                                  options.semantic)
            shard, row = store.locate(near.document)
            item_ids = dataset_column(ctx, benchmark, "id")
            for s in np.unique(shard):
                mine = shard == s
                part = _rows(ids[offsets[s]:offsets[s + 1]], benchmark, item_ids, "semantic", row[mine],
                             near.item[mine], [None] * int(mine.sum()), near.similarity[mine].tolist())
                per_shard[int(s)].append(part)
    documents: set[int] = set()
    benchmarks = {b.id: {"name": b.name, "documents": set(), "ngram": 0, "semantic": 0} for b in params.benchmarks}
    examples = []
    for i in range(corpus.shard_count):
        table = read_stored(ctx.storage, _scan_key(ctx, i)).to_pydict()
        parts = [table, *per_shard[i]]
        _write(ctx.storage, Keys.contamination(ctx.run_id, i), parts)
        for part in parts:
            for position, benchmark, kind in zip(part["position"], part["benchmark"], part["kind"]):
                documents.add(int(offsets[i]) + position)
                benchmarks[benchmark]["documents"].add(int(offsets[i]) + position)
                benchmarks[benchmark][kind] += 1
            for j in range(min(len(part["id"]), EXAMPLES - len(examples))):
                examples.append({name: part[name][j] for name in ("id", "benchmark", "item_id", "kind", "span",
                                                                  "similarity")})
    semantic_search = None if options.semantic is None else (
        f"store:{store.meta.kind}" if store is not None else "exact")
    return {"contamination": {
        **options.as_dict(), "semantic_search": semantic_search,
        "recall_at_10": store.meta.recall_at_10 if store is not None else None,
        "documents": corpus.documents, "contaminated": len(documents),
        "benchmarks": {b.id: {**benchmarks[b.id], "documents": len(benchmarks[b.id]["documents"]),
                              "too_short": _ngram_index(ctx, b, options.ngram).too_short}
                       for b in params.benchmarks},
        "examples": examples}}


def read_contamination(storage: Storage, run: str, shard_documents) -> list[dict]:
    """Every row run ``run``'s contamination stage wrote, ``position`` counted over the whole corpus."""
    rows, start = [], 0
    for i, documents in enumerate(shard_documents):
        for row in read_stored(storage, Keys.contamination(run, i)).to_pylist():
            rows.append({**row, "position": start + row["position"]})
        start += documents
    return rows


def contaminated_mask(storage: Storage, run: str, corpus: DatasetRef) -> np.ndarray:
    """(documents,) bool: True where run ``run``'s contamination stage found a benchmark example."""
    mask = np.zeros(corpus.documents, dtype=bool)
    start = 0
    for i, documents in enumerate(corpus.shard_documents):
        positions = read_stored(storage, Keys.contamination(run, i), ["position"])
        mask[start + positions.column("position").to_numpy()] = True
        start += documents
    return mask
