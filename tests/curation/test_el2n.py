from __future__ import annotations

import json

import numpy as np
import pytest

from curation.el2n import corpus_scores, el2n, el2n_scores, select_highest
from curation.predictions import ingest_predictions

# (id, label, probabilities per run) and the EL2N of each run worked out by hand:
# ||p - e_y||_2 = sqrt(sum of squared differences).
PREDICTIONS = [
    ("doc-1", 2, [[0.1, 0.2, 0.7], [0.2, 0.2, 0.6]]),   # sqrt(.01+.04+.09), sqrt(.04+.04+.16)
    ("doc-2", 0, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]),   # 0, sqrt(.25+.25)
    ("doc-3", 1, [[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]]),  # sqrt(.25+.5625+.0625), sqrt(1+1)
]
BY_HAND = {"doc-1": [np.sqrt(0.14), np.sqrt(0.24)], "doc-2": [0.0, np.sqrt(0.5)],
           "doc-3": [np.sqrt(0.875), np.sqrt(2.0)]}
CORPUS = ["doc-0", "doc-1", "doc-2", "doc-3", "doc-4"]


@pytest.fixture
def stored(tmp_path):
    upload = tmp_path / "predictions.jsonl"
    upload.write_text("".join(json.dumps({"id": i, "label": y, "probs": p}) + "\n" for i, y, p in PREDICTIONS))
    out = tmp_path / "predictions.parquet"
    ingest_predictions(upload, filename=upload.name, is_known_id=set(CORPUS).__contains__, out_path=out,
                       max_bytes=10**6)
    return out


def test_scores_from_the_stored_predictions_match_the_hand_computation(stored):
    scores = el2n_scores(stored)
    assert scores.ids == ["doc-1", "doc-2", "doc-3"]
    np.testing.assert_allclose(scores.per_run.T, [BY_HAND[i] for i in scores.ids], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scores.score, [np.mean(BY_HAND[i]) for i in scores.ids], rtol=1e-6)


def test_corpus_documents_without_predictions_are_nan_and_never_kept(stored):
    score = corpus_scores(el2n_scores(stored), CORPUS)
    np.testing.assert_array_equal(np.isnan(score), [True, False, False, False, True])
    np.testing.assert_allclose(score[1:4], [np.mean(BY_HAND[i]) for i in CORPUS[1:4]], rtol=1e-6)
    selection = select_highest(score, fraction=2 / 3)  # two of the three scored documents
    assert selection.target == 2
    # doc-3 (1.175) and doc-1 (0.432) are the highest; doc-2 (0.354) is the easiest.
    assert selection.reason == ["unscored", "kept", "pruned_easy", "kept", "unscored"]
    np.testing.assert_array_equal(selection.kept, [False, True, False, True, False])
    assert select_highest(score, count=10).kept.sum() == 3


def test_validation_names_the_problem():
    with pytest.raises(ValueError, match="labels must be classes"):
        el2n(np.full((1, 2, 3), 1 / 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="exactly one of fraction and count"):
        select_highest(np.zeros(3), fraction=0.5, count=1)
    with pytest.raises(ValueError, match="fraction must be in"):
        select_highest(np.zeros(3), fraction=0.0)
