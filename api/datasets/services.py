"""Writes for corpora and benchmarks: validated, atomic upload and delete."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from api.core.artifacts import tenant_storage
from api.core.errors import ApplicationError
from api.datasets.models import Contamination, Dataset, PredictionSet, Shard
from api.datasets.selectors import dataset_shards, dataset_usage
from api.tenancy.models import Tenant
from curation.embedders import embedder_key, get_embedder
from curation.ingest import FieldMapping, IngestError, ingest_file
from curation.pipeline import concat_column, concat_embeddings, embedding_paths, read_stored, shard_keys
from curation.predictions import ingest_predictions
from curation.steps.decontaminate import read_contamination
from curation.storage import Keys
from curation.stores import nearest_documents, open_store

logger = logging.getLogger(__name__)


def _check_quota(tenant: Tenant, *, new_bytes: int, new_documents: int) -> None:
    usage = dataset_usage(tenant=tenant)
    for quota, new, limit in (
        ("stored_bytes", new_bytes, tenant.max_stored_bytes),
        ("documents", new_documents, tenant.max_documents),
    ):
        used = usage[quota]
        if used + new > limit:
            raise ApplicationError(
                "quota_exceeded",
                f"this upload needs {new} more {quota.replace('_', ' ')}; the tenant uses {used} of {limit}. "
                "Delete unused corpora or ask the operator for a higher quota.",
                detail={"quota": quota, "used": used, "requested": new, "limit": limit},
                status_code=403,
            )


def default_name(filename: str, *, max_length: int = Dataset._meta.get_field("name").max_length) -> str:
    """A dataset's name when the caller gives none: its file name, shortened to fit ``name``.

    Shortened, not refused: the caller did not choose this name, and the file name itself
    (up to 255 characters, as Django keeps it) is stored whole in ``filename``. A name the
    caller gives is refused past 200 characters by the upload form instead. Either way the
    check is ours, so SQLite (which ignores ``max_length``) and PostgreSQL agree. The
    extension is kept and the cut marked: ``"nnnn….jsonl"``.
    """
    if len(filename) <= max_length:
        return filename
    suffix = "".join(Path(filename).suffixes[-2:])
    suffix = suffix if len(suffix) <= 20 else ""
    return filename[: max_length - len(suffix) - 1] + "…" + suffix


def _limits() -> dict:
    """The upload limits of :mod:`curation.ingest`, from the settings."""
    return {"max_bytes": settings.UPLOAD_MAX_BYTES, "max_ratio": settings.UPLOAD_MAX_COMPRESSION_RATIO,
            "max_line_bytes": settings.UPLOAD_MAX_LINE_BYTES, "max_json_depth": settings.JSON_MAX_DEPTH}


def _upload_on_disk(upload: UploadedFile, staging: Path) -> Path:
    """The upload's path on disk: Django's temp file, or a copy of a small in-memory upload."""
    if hasattr(upload, "temporary_file_path"):
        return Path(upload.temporary_file_path())
    path = staging / "upload.bin"
    with open(path, "wb") as sink:
        for chunk in upload.chunks():
            sink.write(chunk)
    return path


def dataset_create(
    *,
    tenant: Tenant,
    kind: str,
    upload: UploadedFile,
    name: str = "",
    mapping: FieldMapping = FieldMapping(),
    declared_format: str | None = None,
    shard_size: int | None = None,
) -> Dataset:
    """Validate and store an uploaded file as a dataset, all or nothing.

    Shards are written to a staging directory; only a fully valid file within quota
    is moved into place and recorded. Any failure leaves no file and no row behind.
    """
    store = tenant_storage(tenant.pk)
    filename = Path(upload.name or "upload").name
    with store.staging() as staging:
        shards_dir = staging / "shards"
        shards_dir.mkdir()
        upload_path = _upload_on_disk(upload, staging)
        try:
            result = ingest_file(
                upload_path,
                filename=filename,
                out_dir=shards_dir,
                mapping=mapping,
                declared_format=declared_format,
                shard_size=shard_size or settings.SHARD_MAX_DOCUMENTS,
                **_limits(),
            )
        except IngestError as exc:
            raise ApplicationError(exc.code, str(exc), detail=exc.detail) from None
        _check_quota(tenant, new_bytes=result.stored_bytes, new_documents=result.documents)
        dataset = Dataset(
            tenant=tenant,
            kind=kind,
            name=name or default_name(filename),
            filename=filename,
            format=result.format,
            compressed=result.compressed,
            field_mapping=result.fields_used(mapping),
            documents=result.documents,
            text_bytes=result.text_bytes,
            tokens=result.tokens,
            stored_bytes=result.stored_bytes,
            shard_count=len(result.shards),
            source_counts=dict(result.sources.most_common()),
        )
        final = Keys.dataset(dataset.pk)
        try:
            with transaction.atomic():
                dataset.save()
                Shard.unscoped_objects.bulk_create(
                    Shard(tenant=tenant, dataset=dataset, index=s.index, documents=s.documents,
                          text_bytes=s.text_bytes, tokens=s.tokens, file_bytes=s.file_bytes)
                    for s in result.shards
                )
                store.commit(shards_dir, Keys.shards(dataset.pk))
        except BaseException:
            store.delete_prefix(final)
            raise
    logger.info("tenant %s stored %s %s: %d documents in %d shards", tenant.pk, kind, dataset.pk,
                dataset.documents, dataset.shard_count)
    return dataset


def dataset_delete(*, dataset: Dataset) -> None:
    """Delete the rows, then the artifacts (embeddings, index parts, scores included)."""
    store, prefix = tenant_storage(dataset.tenant_id), Keys.dataset(dataset.pk)
    with transaction.atomic():
        dataset.delete()
        transaction.on_commit(lambda: store.delete_prefix(prefix))


def prediction_set_create(*, dataset: Dataset, upload: UploadedFile, name: str = "") -> PredictionSet:
    """Validate uploaded predictions against the corpus ids and store them (all or nothing)."""
    store = tenant_storage(dataset.tenant_id)
    filename = Path(upload.name or "predictions.jsonl").name
    known_ids: set[str] = set()
    for shard in range(dataset.shard_count):
        known_ids.update(read_stored(store, Keys.shard(dataset.pk, shard), ["id"]).column("id").to_pylist())
    prediction_set = PredictionSet(tenant_id=dataset.tenant_id, dataset=dataset, name=name or default_name(filename),
                                   filename=filename)
    final = Keys.predictions(dataset.pk, prediction_set.pk)
    with store.staging() as staging:
        try:
            summary = ingest_predictions(_upload_on_disk(upload, staging), filename=filename,
                                         is_known_id=known_ids.__contains__, out_path=staging / "predictions.parquet",
                                         **_limits())
        except IngestError as exc:
            raise ApplicationError(exc.code, str(exc), detail=exc.detail) from None
        prediction_set.documents, prediction_set.classes, prediction_set.runs = (
            summary.documents, summary.classes, summary.runs)
        try:
            with transaction.atomic():
                prediction_set.save()
                store.commit(staging / "predictions.parquet", final)
        except BaseException:
            store.delete_prefix(final)
            raise
    return prediction_set


def contamination_record(*, job, corpus_id, output: dict) -> dict:
    """Store the rows of a job's contamination stage (the run's :meth:`Keys.contamination` files) as
    :class:`Contamination` rows, replacing any from an earlier delivery of the same unit."""
    corpus = Dataset.objects.for_tenant(job.tenant_id).get(pk=corpus_id)
    store = tenant_storage(job.tenant_id)
    rows = [Contamination(tenant_id=job.tenant_id, corpus=corpus, benchmark_id=row["benchmark"], job=job,
                          document_id=row["id"], position=row["position"], item_id=row["item_id"], kind=row["kind"],
                          span=row["span"], similarity=row["similarity"])
            for row in read_contamination(store, str(job.pk),
                                          dataset_shards(dataset=corpus).values_list("documents", flat=True))]
    with transaction.atomic():
        Contamination.objects.for_tenant(job.tenant_id).filter(job=job).delete()
        Contamination.objects.bulk_create(rows, batch_size=2000)
    return output


#: Characters of each found document's text a search answer carries.
SEARCH_TEXT_CHARS = 500


def corpus_search(*, tenant: Tenant, corpus: Dataset, embedder: str, spec: str, k: int, text: str | None = None,
                  benchmark_id=None) -> dict:
    """The corpus's documents nearest to ``text`` or to any example of a benchmark, through the corpus's
    FAISS store for ``embedder`` (an ``index`` or ``curate`` job builds it), with the store's measured
    recall@10. A benchmark's examples use their stored embeddings, or are embedded here. ``embedder``
    is the name the tenant gave, ``spec`` what it loads (:func:`api.jobs.kinds.embed.embedder_spec`)."""
    store_files = tenant_storage(tenant.pk)
    # no store at all: say so before loading a model
    stores = store_files.list(Keys.vector_stores(corpus.pk))
    model = get_embedder(spec) if stores else None
    store = open_store(store_files, Keys.vector_store(corpus.pk, embedder_key(model))) if model else None
    if store is None:
        raise ApplicationError("no_index", f"corpus {corpus.pk} has no vector store for the {embedder} embedder; run "
                               f"an index job ({{\"kind\": \"index\", \"params\": {{\"corpus\": \"{corpus.pk}\", "
                               f"\"embedder\": \"{embedder}\"}}}}) or a curate job first", field="embedder",
                               status_code=409)
    if benchmark_id is not None:
        benchmark = Dataset.objects.for_tenant(tenant).filter(pk=benchmark_id, kind=Dataset.Kind.BENCHMARK).first()
        if benchmark is None:
            raise ApplicationError("not_found", f"no benchmark with id {benchmark_id}", field="benchmark",
                                   status_code=404)
        embedded = all(store_files.exists(Keys.embedding(benchmark.pk, embedder_key(model), i))
                       for i in range(benchmark.shard_count))
        if embedded:
            queries = concat_embeddings(embedding_paths(store_files, benchmark.pk, model, benchmark.shard_count))
        else:
            queries = model.encode(concat_column(store_files, shard_keys(benchmark.pk, benchmark.shard_count), "text"))
        query = {"benchmark": str(benchmark.pk), "examples": int(len(queries))}
    else:
        queries, query = model.encode([text]), {"text": text}
    rows, scores = nearest_documents(store, queries, k)
    shard, within = store.locate(rows)
    found = {}
    for s in np.unique(shard):
        table = read_stored(store_files, Keys.shard(corpus.pk, int(s)), ["id", "text", "source"])
        for position in np.flatnonzero(shard == s):
            found[position] = table.slice(int(within[position]), 1).to_pylist()[0]
    meta = store.meta
    return {"corpus": str(corpus.pk), "embedder": embedder, "query": query,
            "index": {"kind": meta.kind, "n": meta.n, "recall_at_10": meta.recall_at_10, "params": meta.params},
            "results": [{"id": found[i]["id"], "source": found[i]["source"], "score": float(scores[i]),
                         "position": int(rows[i]), "text": found[i]["text"][:SEARCH_TEXT_CHARS]}
                        for i in range(len(rows))]}
