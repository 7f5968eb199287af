r"""Decontamination: corpus documents that contain a benchmark's own examples (DESIGN.md 3.7).

Two detectors, each run one corpus shard at a time against every benchmark:

- **n-gram overlap** (exact). Text is normalised to words (:func:`normalise_words`: diacritics
  removed, lower case, every character that is not a letter or a digit a separator; the same
  words as datatrove's ``simplify_text`` with its default config, then whitespace splitting).
  Every run of ``n`` consecutive words (13 by default, as GPT-3 and datatrove use) of every
  benchmark example is put in a hashed set (:class:`NgramIndex`); a document is contaminated by
  the benchmark if any of its own ``n``-grams is in the set. An example shorter than ``n``
  words contributes its whole word sequence, its longest n-gram, down to
  :data:`MIN_WORDS` (8) words: GPT-3 (Brown et al. 2020, appendix C) bounds the n-gram
  length below by 8 because shorter spans match ordinary text; shorter examples are counted
  (``too_short``) and left to the semantic pass. Hashes are 64-bit polynomial hashes of the
  words' byte hashes, computed for a whole shard at once with numpy (no Python object per
  word); every hit is then checked word by word, so a hash collision can never flag a document.
- **semantic near-duplicates**: a document whose embedding has cosine similarity at least
  ``semantic`` (0.9 by default) with a benchmark example's. Exact: each document's nearest
  example by :func:`numeric_kernels.topk.cosine_topk` over the shard's embeddings
  (:func:`semantic_matches`); through the corpus's FAISS store (:func:`store_matches`): each
  example's nearest documents, ``k`` doubled until the ``k``-th is below the threshold.

A match names the benchmark example (its position) and, for n-grams, the matching words (the
first matching n-gram of the document), for semantic ones the similarity.

>>> index = NgramIndex.build(["Q: What is two plus two? A: Two plus two is four, said the teacher."], n=8)
>>> index.find(["Unrelated text.", "Notes - what is two plus two?  a: two plus two is four!"])
[NgramMatch(document=1, item=0, span='what is two plus two a two plus')]
"""
from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from numeric_kernels.topk import cosine_topk

NGRAM = 13
MIN_WORDS = 8
SEMANTIC = 0.9
KINDS = ("ngram", "semantic")
_WORD = re.compile(r"[^\W_]+")
#: ASCII bytes to their normalised form in one table: letters lower-cased, digits kept, the rest spaces.
_ASCII_BYTES = bytes(c + 32 if 65 <= c <= 90 else c if chr(c).isalnum() and c < 128 else 32 for c in range(256))
_FILTER_SLOTS = 16  # presence-table entries per indexed n-gram (at most 2^24): most n-grams stop there
_PRIME = 0x100000001B3  # the FNV-1a 64-bit prime: odd, so every power is invertible mod 2^64


def normalise_words(text: str) -> list[str]:
    """The words of ``text``: NFD with combining marks dropped, lower case, split at every character
    that is neither a letter nor a digit.

    >>> normalise_words("Café's  2nd-floor,\\nQ: ÉTÉ_1")
    ['cafe', 's', '2nd', 'floor', 'q', 'ete', '1']
    """
    if text.isascii():  # the same words, several times faster
        return text.encode("ascii").translate(_ASCII_BYTES).decode("ascii").split()
    return _WORD.findall(unicodedata.normalize("NFD", text).translate(_combining_marks()).lower())


@functools.cache
def _combining_marks() -> dict[int, None]:
    """``str.translate`` table deleting every combining mark (Unicode category Mn), built once per process:
    one C pass per text instead of a category lookup per character in Python."""
    return {code: None for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Mn"}


@dataclass(frozen=True)
class NgramMatch:
    """Document ``document`` (position in the scanned batch) contains the n-gram ``span`` of example ``item``."""

    document: int
    item: int
    span: str


#: Byte positions within a word that its hash weighs apart (a longer word's bytes repeat the weights).
_WORD_BYTES = 64
_BYTE_WEIGHTS = np.array([pow(_PRIME, j, 1 << 64) for j in range(_WORD_BYTES)], dtype=np.uint64)
_SPACE = ord(" ")


def _normalised_bytes(text: str) -> bytes:
    """``text``'s words (:func:`normalise_words`) in UTF-8, separated by spaces (ASCII: runs of spaces)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_BYTES)
    return " ".join(normalise_words(text)).encode("utf-8")


def _text_word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    r"""``(hashes (W,) uint64, words per text (len(texts),))`` of the words of every text, in order,
    without a Python object per word: the texts' normalised forms are joined into one UTF-8 buffer,
    a word is a run of bytes other than the space, and its hash is :math:`\sum_j b_j P^{j \bmod 64}`
    over its bytes, then mixed (splitmix64's finaliser) so that its top bits are uniform."""
    normalised = [_normalised_bytes(t) for t in texts]
    sizes = np.fromiter(map(len, normalised), dtype=np.int64, count=len(normalised))
    buffer = np.frombuffer(b" ".join(normalised) + b" ", dtype=np.uint8)
    inside = buffer != _SPACE
    letters = np.flatnonzero(inside)  # byte positions inside words
    if not len(letters):
        return np.zeros(0, dtype=np.uint64), np.zeros(len(texts), dtype=np.int64)
    first = inside.copy()
    first[1:] &= ~inside[:-1]  # a word starts where the previous byte was a space
    starts = np.flatnonzero(first[letters])  # into letters
    del inside, first
    # each byte's position within its word, modulo 64 (uint8: a shard's buffer stays small)
    offset = (np.arange(len(letters), dtype=np.int64)
              - np.repeat(starts, np.diff(np.append(starts, len(letters))))).astype(np.uint8) % _WORD_BYTES
    values = buffer[letters].astype(np.uint64)
    values *= _BYTE_WEIGHTS[offset]
    del offset
    hashes = np.add.reduceat(values, starts)
    hashes ^= hashes >> np.uint64(30)
    hashes *= np.uint64(0xBF58476D1CE4E5B9)
    hashes ^= hashes >> np.uint64(27)
    hashes *= np.uint64(0x94D049BB133111EB)
    hashes ^= hashes >> np.uint64(31)
    # texts are joined with one space: text i starts after the earlier texts' bytes and i spaces
    text_starts = np.concatenate([[0], np.cumsum(sizes[:-1] + 1)])
    return hashes, np.diff(np.searchsorted(letters[starts], np.append(text_starts, len(buffer))))


def _gram_hashes(hashes: np.ndarray, lengths: Iterable[int]) -> dict[int, np.ndarray]:
    r"""For each length ``L``: (len(hashes) - L + 1,) hashes :math:`\sum_{j<L} w_{i+j} P^j \bmod 2^{64}`."""
    out: dict[int, np.ndarray] = {}
    wanted = sorted(set(lengths))
    if not wanted or len(hashes) < wanted[0]:
        return out
    gram = hashes.copy()
    for length in range(1, wanted[-1] + 1):
        if length > 1:
            if len(hashes) < length:
                break
            gram = gram[:-1] + hashes[length - 1:] * np.uint64(pow(_PRIME, length - 1, 1 << 64))
        if length in wanted:
            out[length] = gram
    return out


class NgramIndex:
    """The hashed n-grams of one benchmark's examples.

    ``build(texts, n)``; ``find(documents)`` gives each contaminated document's first match.
    Memory: 16 bytes per n-gram (a sorted hash array and the example of each), a presence table
    of 16 bytes per n-gram (at most 16 MiB) per n-gram length, and the examples' words for checking hits.
    """

    def __init__(self, n: int, lengths: dict[int, tuple[np.ndarray, np.ndarray]], words: list[list[str]],
                 too_short: int):
        self.n = n
        self._lengths = lengths  # L -> (sorted hashes, example of each)
        self._words = words
        self.too_short = too_short

    @classmethod
    def build(cls, texts: Sequence[str], *, n: int = NGRAM, min_words: int = MIN_WORDS) -> "NgramIndex":
        """Index every ``n``-gram of every example of ``texts``; an example of ``min_words <= m < n``
        words contributes its one ``m``-gram, shorter ones nothing (counted in ``too_short``)."""
        if n < 1 or min_words < 1:
            raise ValueError(f"n and min_words must be >= 1; got n={n}, min_words={min_words}")
        words = [normalise_words(t) for t in texts]
        word_hashes, counts = _text_word_hashes(texts)
        grams: dict[int, tuple[list, list]] = {}
        too_short = 0
        for item, item_hashes in enumerate(np.split(word_hashes, np.cumsum(counts)[:-1]) if len(texts) else []):
            length = min(n, len(item_hashes))
            if length < min(n, min_words):
                too_short += 1
                continue
            hashes = _gram_hashes(item_hashes, [length])[length]
            found = grams.setdefault(length, ([], []))
            found[0].append(hashes)
            found[1].append(np.full(len(hashes), item, dtype=np.int64))
        lengths = {}
        for length, (hashes, items) in grams.items():
            hashes, items = np.concatenate(hashes), np.concatenate(items)
            order = np.argsort(hashes, kind="stable")
            bits = int(np.clip(np.ceil(np.log2(_FILTER_SLOTS * len(hashes))), 10, 24))
            present = np.zeros(1 << bits, dtype=bool)
            present[hashes >> np.uint64(64 - bits)] = True
            lengths[length] = (hashes[order], items[order], present)
        return cls(n, lengths, words, too_short)

    @property
    def grams(self) -> int:
        """Hashed n-grams held (with repeats across examples)."""
        return sum(len(h) for h, _, _ in self._lengths.values())

    def find(self, documents: Sequence[str]) -> list[NgramMatch]:
        """The first match of every contaminated document of ``documents`` (in document order);
        the whole batch is hashed at once (:func:`_text_word_hashes`); only documents with a hit are split
        into words, to check it."""
        word_hashes, sizes = _text_word_hashes(documents)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        owner = np.repeat(np.arange(len(documents)), sizes)
        candidates: dict[int, list[tuple[int, int, int]]] = {}  # document -> [(start in doc, length, item)]
        for length, grams in _gram_hashes(word_hashes, self._lengths).items():
            table, items, present = self._lengths[length]
            bits = len(present).bit_length() - 1
            maybe = np.flatnonzero(present[grams >> np.uint64(64 - bits)])
            where = np.searchsorted(table, grams[maybe])
            hit = table[np.minimum(where, len(table) - 1)] == grams[maybe]
            hit &= owner[maybe] == owner[maybe + length - 1]  # the n-gram lies within one document
            for position, first in zip(maybe[hit], where[hit]):
                document = int(owner[position])
                while first < len(table) and table[first] == grams[position]:
                    candidates.setdefault(document, []).append(
                        (int(position - starts[document]), length, int(items[first])))
                    first += 1
        matches = []
        for document in sorted(candidates):
            words = normalise_words(documents[document])
            for start, length, item in sorted(candidates[document]):
                span = words[start:start + length]
                if self._contains(item, span):
                    matches.append(NgramMatch(document, item, " ".join(span)))
                    break
        return matches

    def _contains(self, item: int, span: list[str]) -> bool:
        """Whether example ``item``'s words hold ``span`` contiguously (rules out hash collisions)."""
        words, length = self._words[item], len(span)
        return any(words[i:i + length] == span for i in range(len(words) - length + 1))


@dataclass(frozen=True)
class SemanticMatches:
    """``document`` (k,) positions with a benchmark example within the threshold, the nearest such
    ``item`` (k,) and their ``similarity`` (k,)."""

    document: np.ndarray
    item: np.ndarray
    similarity: np.ndarray


def _check_threshold(threshold: float) -> None:
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"semantic threshold must be a cosine in [-1, 1]; got {threshold!r}")


def semantic_matches(documents: np.ndarray, items: np.ndarray, threshold: float = SEMANTIC) -> SemanticMatches:
    """Exact: every document (n, d) whose nearest example of ``items`` (m, d) (unit rows) has cosine
    >= ``threshold``, by :func:`numeric_kernels.topk.cosine_topk` (blocked, never all pairs at once)."""
    _check_threshold(threshold)
    if len(documents) == 0 or len(items) == 0:
        return SemanticMatches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    best = cosine_topk(documents, np.ascontiguousarray(items, dtype=np.float32), 1)
    found = np.flatnonzero(best.scores[:, 0] >= threshold)
    return SemanticMatches(found.astype(np.int64), best.indices[found, 0].astype(np.int64),
                           best.scores[found, 0].astype(np.float32))


def store_matches(store, items: np.ndarray, threshold: float = SEMANTIC, *, k: int = 16) -> SemanticMatches:
    """Through a :class:`curation.stores.VectorStore`: every document (global row) within ``threshold``
    of an example of ``items`` (m, d), with its most similar example. Each example's top-``k`` is
    searched, ``k`` doubling while some example's ``k``-th neighbour is still within the threshold
    (an approximate store finds what its measured recall allows)."""
    _check_threshold(threshold)
    n = store.meta.n
    if len(items) == 0:
        return SemanticMatches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    k = min(k, n)
    while True:
        top = store.search(items, k)
        if k == n or not np.any(top.scores[:, -1] >= threshold):
            break
        k = min(2 * k, n)
    item, rank = np.nonzero((top.scores >= threshold) & (top.indices >= 0))
    document, similarity = top.indices[item, rank], top.scores[item, rank]
    order = np.lexsort((item, -similarity, document))  # per document, the most similar example first
    document, item, similarity = document[order], item[order], similarity[order]
    first = np.concatenate([[True], document[1:] != document[:-1]]) if len(document) else np.zeros(0, bool)
    return SemanticMatches(document[first].astype(np.int64), item[first].astype(np.int64),
                           similarity[first].astype(np.float32))
