from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from curation.semdedup import semdedup
from tests.shared import cached_embeddings, load_jsonl, shared_path


def _reference(x, labels, similarity_to_centroid, eps):
    """Brute force: within each cluster, in increasing centroid similarity, drop if any earlier is close."""
    kept = np.ones(len(x), dtype=bool)
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        members = members[np.argsort(similarity_to_centroid[members], kind="stable")]
        for position, i in enumerate(members):
            if position and max(float(x[i] @ x[j]) for j in members[:position]) >= 1 - eps:
                kept[i] = False
    return kept


def test_matches_the_brute_force_rule_with_small_blocks():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 16))
    x = np.concatenate([base, base[:20] + 0.01 * rng.normal(size=(20, 16))])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    result = semdedup(x, eps=0.01, k=4, block=7)
    from numeric_kernels.kmeans import spherical_kmeans

    clusters = spherical_kmeans(x.astype(np.float32), 4, seed=0)
    np.testing.assert_array_equal(result.kept, _reference(x.astype(np.float32), clusters.labels_,
                                                          clusters.similarity_, 0.01))
    assert (~result.kept).sum() == 20
    assert all(len(group) == 2 for group in result.groups())
    curve = result.kept_fraction_curve([0.0001, 0.01, 0.5])
    assert curve[0.0001] >= curve[0.01] >= curve[0.5]


@pytest.mark.real_embeddings("corpora/bbc_news.jsonl")
def test_finds_the_exact_duplicates_in_bbc_news():
    """98 of the 2,225 articles repeat another exactly; a few more are re-edited versions of
    the same story (same headline, small edits late in the text, beyond MiniLM's 256 tokens)."""
    path = shared_path("corpora/bbc_news.jsonl")
    texts = [r["text"] for r in load_jsonl(path)]
    text_counts, title_counts = Counter(texts), Counter(t.split("\n", 1)[0] for t in texts)
    exact = np.array([text_counts[t] > 1 for t in texts])
    same_story = np.array([title_counts[t.split("\n", 1)[0]] > 1 for t in texts])
    assert sum(n - 1 for n in text_counts.values()) == 98
    result = semdedup(cached_embeddings(path), eps=1e-4, seed=0)
    dropped = ~result.kept
    recall = (dropped & exact).sum() / 98
    precision_exact = (dropped & exact).sum() / dropped.sum()
    precision_story = (dropped & same_story).sum() / dropped.sum()
    print(f"SemDeDup on BBC news, eps=1e-4: dropped {dropped.sum()}; recall of the 98 exact duplicates "
          f"{recall:.3f}; precision {precision_exact:.3f} against exact copies, {precision_story:.3f} "
          "against same-headline versions")
    assert recall >= 0.95
    assert precision_story >= 0.95
    survivors = Counter(texts[i] for i in np.flatnonzero(result.kept))
    assert max(survivors.values()) == 1, "no text survives twice"
    assert all(survivors[t] == 1 for t in text_counts if text_counts[t] > 1), "one copy of every repeated text"
    curve = result.kept_fraction_curve([1e-4, 0.01, 0.05, 0.2])
    print("eps -> kept fraction", curve)
    assert curve[1e-4] >= curve[0.01] >= curve[0.05] >= curve[0.2]
