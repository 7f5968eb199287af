"""Access to the real public datasets in ``../shared/data`` (see its SOURCES.md).

Tests that need them call :func:`shared_path`; it skips with a clear reason when the
folder is absent on a developer machine and fails under CI (``CI=true``), where a
silent skip would hide a missing check.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
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


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _cached_file(path: Path, spec: str) -> Path | None:
    """The cache file of ``path``'s embeddings by ``spec``, found without loading the model."""
    cached = sorted(CACHE_DIR.glob(f"{path.stem}-{_digest(path)}-{spec}-*.npy"))
    return cached[0] if len(cached) == 1 else None


_PREFETCH: dict[Path, tuple[subprocess.Popen, Path]] = {}  # dataset -> (process embedding it, its log)


def prefetch_embeddings(relatives: list[str]) -> None:
    """Start embedding with MiniLM, in the background, the real datasets (paths relative to
    :func:`shared_data_dir`) not cached yet, so that the suite's other tests run meanwhile:
    at most two processes of one torch thread each, niced (the foreground tests keep their
    core), the files split between them by size. A test that needs one waits for it in
    :func:`cached_embeddings`."""
    missing = [shared_data_dir() / r for r in dict.fromkeys(relatives)]
    missing = [p for p in missing if p.is_file() and p not in _PREFETCH and _cached_file(p, "minilm") is None]
    groups: list[list[Path]] = [[], []]
    for path in sorted(missing, key=lambda p: -p.stat().st_size):  # each file to the lighter group
        min(groups, key=lambda g: sum(p.stat().st_size for p in g)).append(path)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for number, group in enumerate(g for g in groups if g):
        log = CACHE_DIR / f"prefetch-{os.getpid()}-{number}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "tests.shared", *map(str, group)], cwd=REPO_ROOT,
                                       env=env, stdout=out, stderr=subprocess.STDOUT)
        _PREFETCH.update({path: (process, log) for path in group})


def stop_prefetch() -> None:
    """Stop the background embedding processes still running (a session that ended early)
    and remove their logs (a failure was reported by :func:`cached_embeddings`)."""
    for process, log in dict(_PREFETCH.values()).items():
        if process.poll() is None:
            process.kill()
        process.wait()
        log.unlink(missing_ok=True)
    _PREFETCH.clear()


def cached_embeddings(path: Path, spec: str = "minilm") -> np.ndarray:
    """Embeddings of the ``text`` field of a JSONL file, cached on disk by content hash
    (``var/test-cache``, emptied by ``make clean``); computed by a background process of
    :func:`prefetch_embeddings` if one has it in hand.

    Returns ``(n, dim)`` float32 in file order.
    """
    from curation.embedders import embedder_key, get_embedder

    if spec == "minilm" and path in _PREFETCH:
        process, log = _PREFETCH[path]
        while _cached_file(path, spec) is None and process.poll() is None:
            time.sleep(0.5)
        if _cached_file(path, spec) is None:
            raise RuntimeError(f"embedding {path} in the background failed (exit {process.returncode}):\n"
                               + log.read_text(errors="replace")[-4000:])
    cached = _cached_file(path, spec)
    if cached is not None:
        return np.load(cached)
    embedder = get_embedder(spec)
    cache = CACHE_DIR / f"{path.stem}-{_digest(path)}-{embedder_key(embedder)}.npy"
    if cache.is_file():
        return np.load(cache)
    texts = [row["text"] for row in load_jsonl(path)]
    vectors = embedder.encode(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")  # not *.npy: never taken for a cache file
    with open(tmp, "wb") as handle:
        np.save(handle, vectors)
    tmp.replace(cache)
    return vectors


if __name__ == "__main__":  # the background process of prefetch_embeddings: python -m tests.shared FILE...
    os.nice(10)
    import torch

    torch.set_num_threads(1)
    for name in sys.argv[1:]:
        cached_embeddings(Path(name))
