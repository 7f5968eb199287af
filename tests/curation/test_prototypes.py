from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score
from threadpoolctl import threadpool_limits

from curation.prototypes import d4, default_k, keep_policy, prototype_scores, select
from tests.shared import cached_embeddings, load_jsonl, shared_path

# ---------------------------------------------------------------------------- synthetic


def test_select_keeps_the_target_from_the_chosen_end_with_the_floor_per_cluster():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    difficulty = rng.uniform(size=1000) + np.repeat([0.5, 0.0, -0.5], [600, 300, 100])  # cluster 2 is easiest
    plain = select(difficulty, labels, keep="hard", fraction=0.1, floor=0.0)
    floored = select(difficulty, labels, keep="hard", fraction=0.1, floor=0.5)
    assert plain.kept.sum() == floored.kept.sum() == plain.target == 100
    np.testing.assert_array_equal(plain.kept, difficulty >= np.sort(difficulty)[-100])
    assert plain.summary.kept.tolist()[2] == 0, "global keep-hard wipes out the easy cluster"
    # floor 0.5: cluster c keeps at least ceil(0.5 * 100 * n_c / 1000) of its own hardest documents
    np.testing.assert_array_equal(floored.summary.floor, [30, 15, 5])
    assert np.all(floored.summary.kept >= floored.summary.floor)
    for cluster in range(3):
        members = labels == cluster
        kept, dropped = difficulty[members & floored.kept], difficulty[members & ~floored.kept]
        assert kept.min() > dropped.max(), "within a cluster the kept documents are its hardest"
    assert Counter(floored.reason) == {"kept": 100, "pruned_easy": 900}
    easy = select(difficulty, labels, keep="easy", count=100, floor=0.5)
    assert Counter(easy.reason) == {"kept": 100, "pruned_hard": 900}
    assert not np.any(easy.kept & floored.kept)
    assert floored.summary.histogram.sum() == 1000 and floored.summary.histogram_kept.sum() == 100
    assert len(floored.summary.bin_edges) == 21


def test_select_rounds_the_floors_down_when_rounding_up_would_exceed_the_target():
    labels = np.arange(10)  # ten singleton clusters
    selection = select(np.linspace(0, 1, 10), labels, keep="hard", count=3, floor=0.5)
    assert selection.kept.sum() == 3
    np.testing.assert_array_equal(selection.kept.nonzero()[0], [7, 8, 9])


def test_select_validates_its_arguments():
    with pytest.raises(ValueError, match="exactly one of fraction and count"):
        select(np.zeros(3), np.zeros(3), keep="hard")
    with pytest.raises(ValueError, match="keep must be one of"):
        select(np.zeros(3), np.zeros(3), keep="middle", count=1)
    with pytest.raises(ValueError, match="floor must be in"):
        select(np.zeros(3), np.zeros(3), keep="easy", count=1, floor=1.5)


def test_keep_policy_follows_abundance_unless_overridden():
    abundant = keep_policy(unique_documents=1_000_000, budget_documents=100_000)
    assert (abundant.keep, abundant.abundance) == ("hard", 10.0)
    scarce = keep_policy(unique_documents=100_000, budget_documents=400_000)
    assert (scarce.keep, scarce.abundance) == ("easy", 0.25)
    assert scarce.reason.startswith("scarce")
    assert keep_policy(unique_documents=100, budget_documents=100).keep == "hard"
    assert keep_policy(unique_documents=100, budget_documents=150, abundant_at=0.5).keep == "hard"
    forced = keep_policy(unique_documents=1_000_000, budget_documents=100_000, override="easy")
    assert (forced.keep, forced.abundance) == ("easy", 10.0)
    with pytest.raises(ValueError, match="override must be one of"):
        keep_policy(unique_documents=1, budget_documents=1, override="random")


def test_default_k_is_the_square_root_rule_clipped():
    assert [default_k(n) for n in (1, 3, 50, 7600, 2_000_000, 10**9)] == [1, 2, 5, 62, 1000, 1000]


# ---------------------------------------------------------------------------- AG News


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One BLAS / OpenMP thread: on a machine whose cores are shared with other jobs, OpenBLAS and FAISS
    threads spin-wait on each other and the many small within-cluster products run 10-60x slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def ag_news():
    """MiniLM embeddings (7,600, 384) and the four topic labels of the AG News test split."""
    path = shared_path("corpora/ag_news_test.jsonl")
    return cached_embeddings(path), np.array([row["source"] for row in load_jsonl(path)])


@pytest.fixture(scope="module")
def four_prototypes(ag_news):
    return prototype_scores(ag_news[0], k=4, seed=0)


def _purity(topics: np.ndarray, labels: np.ndarray) -> float:
    """Share of documents whose cluster's most common topic is their own."""
    return sum(Counter(topics[labels == c]).most_common(1)[0][1] for c in np.unique(labels)) / len(labels)


@pytest.mark.real_embeddings("corpora/ag_news_test.jsonl")
def test_four_prototypes_recover_the_four_topics(ag_news, four_prototypes):
    """Measured: AMI 0.587 (seeds 0-2: 0.587-0.589; scikit-learn's Euclidean KMeans 0.590; chance 0),
    purity 0.836."""
    topics = ag_news[1]
    ami = adjusted_mutual_info_score(topics, four_prototypes.labels)
    purity = _purity(topics, four_prototypes.labels)
    print(f"AG News, k = 4 prototypes: AMI with the topics {ami:.3f}, purity {purity:.3f}")
    assert ami >= 0.5
    assert np.all((four_prototypes.difficulty >= 0) & (four_prototypes.difficulty <= 2))


@pytest.mark.real_embeddings("corpora/ag_news_test.jsonl")
def test_keep_easy_and_keep_hard_take_opposite_ends(ag_news, four_prototypes):
    """Prototypical documents are topic-typical: measured purity at 5% kept, easy 0.905, all 0.836, hard 0.497."""
    topics, scores = ag_news[1], four_prototypes
    easy = select(scores.difficulty, scores.labels, keep="easy", fraction=0.05)
    hard = select(scores.difficulty, scores.labels, keep="hard", fraction=0.05)
    assert not np.any(easy.kept & hard.kept)
    for cluster in range(4):
        members = scores.labels == cluster
        assert scores.difficulty[members & hard.kept].min() > scores.difficulty[members & easy.kept].max()
    purity = {name: _purity(topics[kept], scores.labels[kept])
              for name, kept in (("easy", easy.kept), ("all", np.ones(len(topics), bool)), ("hard", hard.kept))}
    print("AG News, k = 4, 5% kept: topic purity of the clusters", {n: round(p, 3) for n, p in purity.items()})
    assert purity["easy"] > 0.85 > purity["all"] > 0.7 > purity["hard"]


@pytest.mark.real_embeddings("corpora/ag_news_test.jsonl")
def test_the_balance_floor_keeps_every_cluster_at_an_aggressive_fraction(ag_news):
    """Measured at 5% kept with the default 62 prototypes: without a floor keep-hard empties 6 clusters and
    keep-easy 23, and the topics' max/min kept count grows to 3.3 and 4.6; with floor 0.5, none is empty."""
    x, topics = ag_news
    scores = prototype_scores(x, seed=0)
    assert len(scores.centroids) == default_k(len(x)) == 62
    for keep in ("hard", "easy"):
        plain = select(scores.difficulty, scores.labels, keep=keep, fraction=0.05, floor=0.0)
        floored = select(scores.difficulty, scores.labels, keep=keep, fraction=0.05, floor=0.5)
        summary = floored.summary
        imbalance = {name: max(c.values()) / min(c.values()) for name, c in
                     (("plain", Counter(topics[plain.kept])), ("floored", Counter(topics[floored.kept])))}
        print(f"keep-{keep}, 5%: empty clusters without floor {(plain.summary.kept == 0).sum()}, with floor "
              f"{(summary.kept == 0).sum()}; topic max/min {imbalance['plain']:.2f} -> {imbalance['floored']:.2f}")
        assert (plain.summary.kept == 0).sum() >= 3
        assert np.all(summary.kept >= 1)
        assert np.all(summary.kept * len(x) >= 0.5 * floored.target * summary.documents)
        assert imbalance["floored"] < imbalance["plain"]


@pytest.mark.real_embeddings("corpora/ag_news_test.jsonl")
def test_d4_drops_duplicates_before_prototype_pruning(ag_news, four_prototypes):
    """AG News plus exact copies of 200 of its documents: SemDeDup removes one of every pair, and only
    then do the prototypes prune. Without the de-duplication, the four prototypes of AG News keep both
    copies of many pairs (a copy has its original's difficulty)."""
    x = ag_news[0]
    copies = np.random.default_rng(0).choice(len(x), size=200, replace=False)
    data = np.concatenate([x, x[copies]])
    pairs = np.stack([copies, len(x) + np.arange(200)], axis=1)
    result = d4(data, fraction=0.5, keep="easy", k=4, dedup_k=20, seed=0)
    reason = np.array(result.reason)
    assert result.kept.sum() == round(0.5 * len(data))
    assert np.all((reason[pairs] == "duplicate").sum(axis=1) == 1), "exactly one of every pair is the duplicate"
    counts = Counter(result.reason)
    print("D4 on AG News + 200 copies, keep-easy 50%:", dict(counts))
    assert set(counts) == {"kept", "duplicate", "pruned_hard"}
    assert 200 <= counts["duplicate"] <= 260
    duplicate = reason == "duplicate"
    assert np.all(np.isnan(result.difficulty[duplicate])) and np.all(result.labels[duplicate] == -1)
    assert not np.any(result.kept[pairs].all(axis=1))
    difficulty = np.concatenate([four_prototypes.difficulty, four_prototypes.difficulty[copies]])
    labels = np.concatenate([four_prototypes.labels, four_prototypes.labels[copies]])
    alone = select(difficulty, labels, keep="easy", fraction=0.5)
    both_kept = alone.kept[pairs].all(axis=1).sum()
    print(f"prototypes without de-duplication keep both copies of {both_kept} of the 200 pairs")
    assert both_kept >= 50
