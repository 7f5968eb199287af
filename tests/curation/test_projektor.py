"""curation.projektor: stage-2 formula, OT gradient, stage-1 fit and the simplex optimizer."""
import itertools

import numpy as np
import pytest

from curation.projektor import MixtureOT, Projektor, extrapolate, project_to_simplex


# small problems: one torch thread is as fast, and OpenMP regions stall on oversubscribed cores
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mixture_ot():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    sources = [c + 0.5 * rng.normal(size=(30 + 5 * i, 8)) for i, c in enumerate(centres)]
    target = 0.6 * centres[0] + 0.4 * centres[1] + 0.5 * rng.normal(size=(40, 8))
    return MixtureOT(sources, target, metric="sqeuclidean", reg=0.5, tol=1e-12)


def test_stage_two_formula_by_hand():
    # log-linear in N through (1e3, 0.3) and (1e4, 0.5): +0.2 per decade
    assert extrapolate(1e5, 1e3, 0.3, 1e4, 0.5) == pytest.approx(0.7, abs=1e-12)
    assert extrapolate(1e3, 1e3, 0.3, 1e4, 0.5) == pytest.approx(0.3, abs=1e-12)
    assert extrapolate(10 ** 3.5, 1e3, 0.3, 1e4, 0.5) == pytest.approx(0.4, abs=1e-12)
    assert extrapolate(1e2, 1e3, 0.3, 1e4, 0.5) == pytest.approx(0.1, abs=1e-12)
    np.testing.assert_allclose(extrapolate(1e5, 1e3, np.array([0.3, 1.0]), 1e4, np.array([0.5, 0.5])), [0.7, 0.0])


def test_simplex_projection():
    rng = np.random.default_rng(1)
    for _ in range(50):
        v = rng.normal(size=5) * 2
        p = project_to_simplex(v)
        assert np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-12)
        # optimality: p = max(v - theta, 0) for one theta, i.e. v - p is constant on the support
        support = p > 0
        np.testing.assert_allclose(v[support] - p[support], (v - p)[support][0], atol=1e-12)
        assert np.all(v[~support] <= (v - p)[support][0] + 1e-12)
        np.testing.assert_allclose(project_to_simplex(p), p, atol=1e-12)


def test_ot_gradient_matches_finite_differences(mixture_ot):
    h = 1e-4
    for p in (np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.1, 0.8])):
        value, grad = mixture_ot.value_and_grad(p)
        assert grad.sum() == pytest.approx(0.0, abs=1e-12)
        for i, j in itertools.permutations(range(3), 2):
            direction = np.zeros(3)
            direction[i], direction[j] = 1.0, -1.0
            numeric = (mixture_ot(p + h * direction) - mixture_ot(p - h * direction)) / (2 * h)
            assert abs(numeric - grad @ direction) < 1e-3 * abs(numeric)


def test_fit_recovers_known_coefficients(mixture_ot):
    rng = np.random.default_rng(2)
    pilots = rng.dirichlet(np.ones(3), size=16)
    ot = np.array([mixture_ot(p) for p in pilots])
    b2, b1, b0 = np.array([0.1, -0.2, 0.05]), np.array([-0.3, 0.2, 0.1]), -0.02
    c2, c1, c0 = np.array([0.5, -0.4, 0.3]), np.array([1.0, 2.0, -1.0]), 0.7

    def truth(p, ot, scale):
        return scale * (((p ** 2 @ b2 + p @ b1 + 3 * b0) * ot + p ** 2 @ c2 + p @ c1 + c0))

    sizes = np.repeat([1e3, 1e4], 16)
    scores = np.concatenate([truth(pilots, ot, 1.0), truth(pilots, ot, 1.5)])
    model = Projektor(mixture_ot).fit(np.concatenate([pilots, pilots]), sizes, scores)
    stage = model.stages_[1e3]
    np.testing.assert_allclose(stage.b2, b2, atol=1e-7)
    np.testing.assert_allclose(stage.b1, b1 + 3 * b0, atol=1e-7)  # b0 absorbed on the simplex
    np.testing.assert_allclose(stage.c2, c2, atol=1e-7)
    np.testing.assert_allclose(stage.c1, c1 + c0, atol=1e-7)
    assert stage.rmse < 1e-9
    # stage 2 through the fitted models: halfway in log N is halfway between the stages
    np.testing.assert_allclose(model.predict(pilots[:3], 10 ** 3.5), truth(pilots[:3], ot[:3], 1.25), rtol=1e-7)
    with pytest.raises(ValueError, match="at least 12"):
        Projektor(mixture_ot).fit(pilots[:5], np.full(5, 1e3), scores[:5])


def test_optimizer_stays_on_the_simplex_and_beats_the_pilots(mixture_ot):
    rng = np.random.default_rng(3)
    pilots = rng.dirichlet(np.ones(3), size=12)
    ot = np.array([mixture_ot(p) for p in pilots])
    # accuracy falls with the OT distance, plus a concave preference for mixing
    scores = 1.0 - 0.05 * ot - 0.3 * (pilots ** 2).sum(1)
    model = Projektor(mixture_ot).fit(pilots, np.full(12, 1e4), scores)
    best = model.optimize(1e4)
    assert np.all(best.weights >= 0) and best.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert best.predicted > model.predict(pilots, 1e4).max() + 1e-4
    value, grad = model.value_and_grad(best.weights, 1e4)
    assert value == pytest.approx(best.predicted)
    # first-order optimality on the simplex: no feasible ascent direction remains
    assert np.abs(project_to_simplex(best.weights + 0.01 * grad) - best.weights).max() < 1e-4
    worst = model.optimize(1e4, maximize=False)
    assert worst.predicted < model.predict(pilots, 1e4).min()
