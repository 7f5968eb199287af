"""curation.ot: bootstrap OT distances between embedding sets."""
import numpy as np
import pytest
import torch

from curation.ot import distance_table, embedding_distance
from numeric_kernels.sinkhorn import sinkhorn_divergence


# small problems: one torch thread is as fast, and OpenMP regions stall on oversubscribed cores
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cluster(rng, centre, n=150, d=8, spread=0.3):
    return centre + spread * rng.normal(size=(n, d))


def test_seeded_band_and_ordering():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=8)
    target = _cluster(rng, centre)
    near, far = _cluster(rng, centre), _cluster(rng, centre + 1.0)
    options = dict(metric="sqeuclidean", reg=0.1, sample_size=80, n_resamples=10)
    d_near = embedding_distance(near, target, seed=3, **options)
    d_far = embedding_distance(far, target, seed=3, **options)
    assert d_near.low <= d_near.value <= d_near.high and d_near.resamples.shape == (10,)
    assert d_near.high < d_far.low
    again = embedding_distance(near, target, seed=3, **options)
    np.testing.assert_array_equal(again.resamples, d_near.resamples)
    assert not np.array_equal(embedding_distance(near, target, seed=4, **options).resamples, d_near.resamples)


def test_resamples_are_the_divergence_of_the_drawn_points():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(25, 4)) + 0.5
    est = embedding_distance(x, y, metric="sqeuclidean", reg=0.5, sample_size=100, n_resamples=3, seed=7, tol=1e-10)
    assert est.sample_sizes == (30, 25)
    draw = np.random.default_rng(np.random.SeedSequence(7).spawn(2)[0])
    idx_s, idx_t = draw.integers(0, 30, size=(3, 30)), draw.integers(0, 25, size=(3, 25))
    for k in range(3):
        expected = sinkhorn_divergence(x=x[idx_s[k]], y=y[idx_t[k]], reg=0.5, tol=1e-10).value
        np.testing.assert_allclose(est.resamples[k], expected, rtol=1e-6)


def test_distance_table_picks_the_matching_source():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(3, 16)) * 2
    sources = {f"s{k}": _cluster(rng, centres[k], d=16) for k in range(3)}
    targets = {"t0": _cluster(rng, centres[0], n=60, d=16), "t2": _cluster(rng, centres[2], n=60, d=16)}
    table = distance_table(sources, targets, metric="cosine", reg=0.05, sample_size=60, n_resamples=4)
    assert table.value.shape == (3, 2) and len(table.records()) == 6
    assert table.nearest_source("t0") == "s0" and table.nearest_source("t2") == "s2"
    assert table.records()[0]["source"] == "s0" and table.records()[0]["target"] == "t0"


def test_label_augmented_cost_sees_swapped_labels():
    rng = np.random.default_rng(3)
    def draw():
        return np.concatenate([_cluster(rng, np.zeros(4), n=60, d=4), _cluster(rng, np.full(4, 3.0), n=60, d=4)])

    x, y = draw(), draw()
    labels = np.array([0] * 60 + [1] * 60)
    options = dict(metric="sqeuclidean", reg=0.5, sample_size=120, n_resamples=3)
    plain = embedding_distance(x, y, **options)
    same = embedding_distance(x, y, source_labels=labels, target_labels=labels, **options)
    swapped = embedding_distance(x, y, source_labels=labels, target_labels=1 - labels, **options)
    mixed = embedding_distance(x, y, source_labels=labels, target_labels=rng.permutation(labels), **options)
    assert same.labelled and not plain.labelled
    # OTDD compares classes by their conditional distributions, not by name: renaming the
    # target's classes changes nothing, while classes that cut across the clusters do
    np.testing.assert_allclose(swapped.value, same.value, rtol=1e-6)
    assert plain.value < same.value < 3 * plain.value
    assert mixed.value > same.value + 5


def test_emd_and_torch_inputs():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 1
    emd = embedding_distance(x, y, metric="sqeuclidean", method="emd", sample_size=40, n_resamples=2)
    assert emd.method == "emd" and emd.value > 0 and emd.converged
    sink = embedding_distance(torch.from_numpy(x).float(), torch.from_numpy(y).float(), metric="sqeuclidean",
                              reg=0.1, sample_size=40, n_resamples=2)
    np.testing.assert_allclose(sink.value, emd.value, rtol=0.2)
    with pytest.raises(ValueError, match="labels for both"):
        embedding_distance(x, y, source_labels=np.zeros(40))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_a_device_solves_the_same_problem_there(device):
    """``device`` moves the resampled points to a torch device (a GPU worker passes ``cuda``): the
    same draws, the same divergences as the numpy inputs solved where they are (float32 both)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    y = (rng.normal(size=(150, 16)) + 0.3).astype(np.float32)
    options = dict(metric="cosine", reg=0.05, sample_size=100, n_resamples=6, seed=11)
    as_given = embedding_distance(x, y, **options)
    moved = embedding_distance(x, y, device=device, **options)
    np.testing.assert_allclose(moved.resamples, as_given.resamples, rtol=1e-4, atol=1e-6)
    assert moved.converged and as_given.converged
    assert not np.allclose(embedding_distance(x, y + 1.0, device=device, **options).resamples, as_given.resamples)
