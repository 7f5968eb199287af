"""Access to the real public datasets in ``../shared/data`` (see its SOURCES.md).

Tests that need them call :func:`shared_path`; it skips with a clear reason when the
folder is absent on a developer machine and fails under CI (``CI=true``), where a
silent skip would hide a missing check.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / "var" / "test-cache"


def shared_data_dir() -> Path:
    """``$SHARED_DATA_DIR`` if set, else ``../shared/data`` next to the repository."""
    configured = os.environ.get("SHARED_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def shared_path(relative: str) -> Path:
    path = shared_data_dir() / relative
    if path.is_file():
        return path
    reason = f"real dataset {path} is absent (set SHARED_DATA_DIR to the folder holding corpora/ and benchmarks/)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; CI must run the real-data tests", pytrace=False)
    pytest.skip(reason)


def load_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def cached_embeddings(path: Path, spec: str = "minilm") -> np.ndarray:
    """Embeddings of the ``text`` field of a JSONL file, cached on disk by content hash.

    Returns ``(n, dim)`` float32 in file order.
    """
    from curation.embedders import embedder_key, get_embedder

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cached = sorted(CACHE_DIR.glob(f"{path.stem}-{digest}-{spec}-*.npy"))
    if len(cached) == 1:  # found without loading the model (var/test-cache is emptied with `make clean`)
        return np.load(cached[0])
    embedder = get_embedder(spec)
    cache = CACHE_DIR / f"{path.stem}-{digest}-{embedder_key(embedder)}.npy"
    if cache.is_file():
        return np.load(cache)
    texts = [row["text"] for row in load_jsonl(path)]
    vectors = embedder.encode(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(cache)
    return vectors
