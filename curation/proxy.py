"""A cheap proxy evaluator: benchmark cross-entropy under a smoothed bigram model.

When a user has no pilot training runs, we still need observations (mixture, size,
metric) to fit the performance model (DESIGN.md 3.6). The proxy trains an
interpolated absolute-discounting bigram language model (Ney, Essen and Kneser
1994) on a sample drawn from the mixture and reports the cross-entropy of the
benchmark texts in nats per token: lower means the mixture covers the target better.

.. math::

    P(w \\mid v) = \\frac{\\max(c(v, w) - D, 0)}{c(v)} + \\frac{D \\, N_{1+}(v \\bullet)}{c(v)} P_1(w),
    \\qquad P_1(w) = \\frac{c(w) + 1}{N + V}

Tokens are lower-cased words hashed into ``buckets`` ids (CRC-32), so memory is
bounded whatever the vocabulary; unseen contexts fall back to ``P_1``.
"""
from __future__ import annotations

import re
import zlib
from typing import Iterable

import numpy as np

_WORD = re.compile(r"\w+")


def token_ids(text: str, buckets: int) -> np.ndarray:
    """Hashed ids ``(n_tokens,)`` int64 of the lower-cased words of ``text``."""
    return np.fromiter((zlib.crc32(w.encode()) % buckets for w in _WORD.findall(text.lower())), dtype=np.int64)


class BigramProxy:
    """Interpolated absolute-discounting bigram LM over hashed words.

    >>> model = BigramProxy(buckets=1024).fit(["the cat sat", "the cat ran"])
    >>> model.cross_entropy(["the cat sat"]) < model.cross_entropy(["dogs bark loudly"])
    True
    """

    def __init__(self, *, buckets: int = 2**20, discount: float = 0.75):
        if buckets < 2 or not 0 < discount < 1:
            raise ValueError(f"buckets must be >= 2 and 0 < discount < 1; got {buckets}, {discount}")
        self.buckets, self.discount = buckets, discount

    def fit(self, texts: Iterable[str]) -> "BigramProxy":
        """Train on ``texts``."""
        return self.fit_ids(token_ids(text, self.buckets) for text in texts)

    def fit_ids(self, documents: Iterable[np.ndarray]) -> "BigramProxy":
        """Train on documents already turned into :func:`token_ids` (``(n_tokens,)`` each)."""
        token_arrays, pair_keys = [], []
        for ids in documents:
            token_arrays.append(ids)
            if len(ids) > 1:
                pair_keys.append(ids[:-1] * self.buckets + ids[1:])
        tokens = np.concatenate(token_arrays) if token_arrays else np.zeros(0, dtype=np.int64)
        unigrams = np.bincount(tokens, minlength=self.buckets)
        keys = np.concatenate(pair_keys) if pair_keys else np.zeros(0, dtype=np.int64)
        self.pair_keys_, self.pair_counts_ = np.unique(keys, return_counts=True)
        contexts = self.pair_keys_ // self.buckets
        self.context_counts_ = np.bincount(contexts, weights=self.pair_counts_, minlength=self.buckets)
        self.context_types_ = np.bincount(contexts, minlength=self.buckets).astype(np.float64)
        self.unigram_counts_ = unigrams
        self.tokens_ = int(unigrams.sum())
        return self

    def _unigram(self, ids: np.ndarray) -> np.ndarray:
        return (self.unigram_counts_[ids] + 1.0) / (self.tokens_ + self.buckets)

    def token_log_probs(self, text: str) -> np.ndarray:
        """Natural-log probability of every token after the first, ``(n_tokens - 1,)``."""
        return self._log_probs(token_ids(text, self.buckets))

    def _log_probs(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) < 2:
            return np.zeros(0)
        return np.log(self.conditional(ids[:-1], ids[1:]))

    def conditional(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        """``P(current | previous)`` for paired arrays of token ids."""
        keys = previous * self.buckets + current
        pair = np.zeros(len(keys))
        if len(self.pair_keys_):
            position = np.minimum(np.searchsorted(self.pair_keys_, keys), len(self.pair_keys_) - 1)
            hit = self.pair_keys_[position] == keys
            pair[hit] = self.pair_counts_[position[hit]]
        context = self.context_counts_[previous]
        seen = context > 0
        p_uni = self._unigram(current)
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothed = (np.maximum(pair - self.discount, 0) / context
                        + self.discount * self.context_types_[previous] / context * p_uni)
        return np.where(seen, smoothed, p_uni)

    def cross_entropy(self, texts: Iterable[str]) -> float:
        """Mean negative log-likelihood per predicted token (nats) over ``texts``."""
        return self.cross_entropy_ids(token_ids(text, self.buckets) for text in texts)

    def cross_entropy_ids(self, documents: Iterable[np.ndarray]) -> float:
        """:meth:`cross_entropy` of documents already turned into :func:`token_ids`."""
        logs = [self._log_probs(ids) for ids in documents]
        total = sum(len(lp) for lp in logs)
        if total == 0:
            raise ValueError("the evaluation texts hold no token pairs")
        return float(-sum(lp.sum() for lp in logs) / total)
