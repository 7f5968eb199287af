"""Artifact storage benchmark: local disk against an S3-protocol server (``moto_server`` on this
machine, the server the tests use; MinIO or S3 in production is faster and farther away).

For each size, generated JSONL (``bench_ingest.generate_jsonl``) is ingested into Parquet
shards of 10,000 documents once; then, interleaved in rounds in one process:

- ingest + store: ``curation.ingest.ingest_file`` into ``storage.staging()`` and
  ``storage.commit`` of the shards: ``LocalStorage`` (one rename) vs ``S3Storage`` (parallel
  uploads);
- upload only, the same shard folder: ``S3Storage.commit`` vs pyarrow's
  ``pyarrow.fs.copy_files`` to its ``S3FileSystem`` (the baseline library's fastest way to
  put a folder of files into a bucket);
- read one column (``text``) of every shard: ``curation.pipeline.read_stored`` on local disk,
  on S3 (ranged GETs through ``S3Storage.open``), and ``pyarrow.parquet.read_table`` through
  pyarrow's ``S3FileSystem``.

Prints MB/s of the JSONL (ingest) or of the stored Parquet (upload, read), documents/s,
peak RSS above the start, the median paired ratio against the fastest baseline, the load
average and the BLAS libraries.

    .venv/bin/python bench/bench_storage.py                 # 50 and 200 MB of JSONL, 3 rounds
    .venv/bin/python bench/bench_storage.py --sizes-mb 20 --rounds 2
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from bench_ingest import generate_jsonl
from harness import Run, interleave

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curation.ingest import ingest_file  # noqa: E402
from curation.pipeline import read_stored  # noqa: E402
from curation.s3 import LocalCache, S3Storage, make_client  # noqa: E402
from curation.storage import LocalStorage, Storage  # noqa: E402
from tests.s3.servers import MotoServer  # noqa: E402 - the S3-protocol server of the tests

MB = 10**6
SHARD = 10_000


def ingest_and_store(storage: Storage, source: Path, prefix: str) -> int:
    """Ingest ``source`` and store its shards under ``prefix``; the documents."""
    storage.delete_prefix(prefix)
    with storage.staging() as folder:
        (folder / "shards").mkdir()
        result = ingest_file(source, filename=source.name, out_dir=folder / "shards", shard_size=SHARD)
        storage.commit(folder / "shards", prefix)
    return sum(s.documents for s in result.shards)


def read_column(storage: Storage, names: list[str]) -> int:
    return sum(read_stored(storage, name, ["text"]).num_rows for name in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", default="50,200", help="JSONL sizes in MB, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    run = Run("Artifact storage: local disk vs an S3-protocol server")
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    server = MotoServer(log=work / "moto.log").start()
    try:
        import os

        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        make_client(server.url, "us-east-1").create_bucket(Bucket=bucket)
        s3 = S3Storage(bucket, "bench", client=make_client(server.url, "us-east-1"),
                       cache=LocalCache(work / "cache", 10 * 2**30), scratch=work / "scratch")
        local = LocalStorage(work / "local")
        arrow_s3 = pafs.S3FileSystem(access_key="bench", secret_key="bench", region="us-east-1",
                                     endpoint_override=server.url.removeprefix("http://"), scheme="http")
        rows = []
        for size_mb in (int(s) for s in args.sizes_mb.split(",")):
            source = work / f"corpus-{size_mb}mb.jsonl"
            generate_jsonl(source, size_mb * MB)
            shards = work / f"shards-{size_mb}"
            shards.mkdir()
            documents = sum(s.documents for s in ingest_file(source, filename=source.name, out_dir=shards,
                                                             shard_size=SHARD).shards)
            parquet_bytes = sum(p.stat().st_size for p in shards.iterdir())
            names = [f"read-{size_mb}/{p.name}" for p in sorted(shards.iterdir())]
            local.commit(Path(shutil.copytree(shards, work / f"copy-{size_mb}")), f"read-{size_mb}")
            s3.commit(shards, f"read-{size_mb}")
            ingest = interleave({
                "ingest + store, local disk": lambda: ingest_and_store(local, source, f"ingest-{size_mb}"),
                "ingest + store, S3 (ours)": lambda: ingest_and_store(s3, source, f"ingest-{size_mb}")},
                rounds=args.rounds, run=run, log=lambda line: print(line, file=sys.stderr, flush=True))
            upload = interleave({
                "upload, S3Storage.commit (ours)": lambda: s3.commit(shards, f"upload-{size_mb}"),
                "upload, pyarrow copy_files": lambda: pafs.copy_files(
                    str(shards), f"{bucket}/arrow-{size_mb}", destination_filesystem=arrow_s3)},
                rounds=args.rounds, run=run, log=lambda line: print(line, file=sys.stderr, flush=True))
            read = interleave({
                "read text, local disk": lambda: read_column(local, names),
                "read text, S3 read_stored (ours)": lambda: read_column(s3, names),
                "read text, pyarrow S3FileSystem": lambda: sum(
                    pq.read_table(f"{bucket}/bench/{n}", columns=["text"], filesystem=arrow_s3).num_rows
                    for n in names)},
                rounds=args.rounds, run=run, log=lambda line: print(line, file=sys.stderr, flush=True))
            for comparison, volume, baseline in ((ingest, size_mb * MB, "ingest + store, local disk"),
                                                 (upload, parquet_bytes, "upload, pyarrow copy_files"),
                                                 (read, parquet_bytes, "read text, pyarrow S3FileSystem")):
                for name in comparison.runs:
                    seconds = comparison.median_s(name)
                    rows.append((f"{size_mb} MB", f"{documents:,}", name, seconds, volume / MB / seconds,
                                 documents / seconds, comparison.peak_above_mb(name),
                                 comparison.paired_ratio(baseline, name)))
        print("| JSONL | documents | method | median s | MB/s | docs/s | peak RSS above start (MiB) | "
              "ratio vs baseline (>1: faster) |")
        print("|---|---|---|---|---|---|---|---|")
        for size, docs, name, seconds, mbps, dps, peak, ratio in rows:
            print(f"| {size} | {docs} | {name} | {seconds:.2f} | {mbps:.1f} | {dps:,.0f} | {peak:.0f} | {ratio:.2f} |")
        print("\nBaselines: ingest against local disk (what the object store costs), upload against pyarrow's "
              "copy_files, reads against pyarrow's S3FileSystem.")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
        run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
