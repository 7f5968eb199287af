"""curation.scaling: the published Goyal et al. figures, the frontier, and fitting."""
import warnings

import numpy as np
import pytest

from curation.scaling import (TMARS_DATACOMP_MEDIUM, TMARS_POOLS, Bucket, ExtrapolationWarning, Observation,
                              ScalingLaw, fit_scaling_law)

# DESIGN.md 3.5: predicted ImageNet zero-shot accuracy (%), buckets of 12.8M samples
PUBLISHED = {
    32e6: {"top10": 18.2471, "top20": 15.8361, "top30": 13.4221, "top40": 11.6774},
    128e6: {"top10": 28.7290, "top20": 29.6000, "top30": 26.7660, "top40": 24.1281},
    640e6: {"top10": 31.1758, "top20": 38.5524, "top30": 37.5648, "top40": 35.1359},
}


@pytest.mark.parametrize("samples_seen", sorted(PUBLISHED))
@pytest.mark.parametrize("pool", list(TMARS_POOLS))
def test_published_figures(samples_seen, pool):
    accuracy = 100 * TMARS_DATACOMP_MEDIUM.accuracy(TMARS_POOLS[pool], samples_seen)
    np.testing.assert_allclose(accuracy, PUBLISHED[samples_seen][pool], atol=1e-3)


def test_best_pool_moves_with_compute():
    frontier = TMARS_DATACOMP_MEDIUM.frontier(TMARS_POOLS, np.geomspace(1e7, 1e10, 31))
    assert frontier.best[0] == "top10" and frontier.best[-1] == "top30"
    (first, *_), (second, *_) = frontier.switches
    assert [s[1:] for s in frontier.switches] == [("top10", "top20"), ("top20", "top30")]
    assert 0.9e8 < first < 1.1e8
    assert 1.0e9 < second < 1.2e9
    assert frontier.accuracy.shape == (31, 4)


def test_formula_by_hand_single_pool():
    law = ScalingLaw(a=0.1, d=0.05, buckets={"q": Bucket(b=-0.3, tau=2.0, size=1e6)})
    n = 2.5e6  # K = 2 repetitions
    s = [0.1 * 1e6 / 1e5, 0.1 * 2e6 / 1e5, 0.1 * 2.5e6 / 1e5]
    s_prime = [None, 0.1 * 1e6 / 1e5, 0.1 * 2e6 / 1e5]
    b = [-0.3 * 0.5 ** (k / 2.0) for k in range(3)]
    expected = (s[0] ** b[0] + 0.05) * (s[1] / s_prime[1]) ** b[1] * (s[2] / s_prime[2]) ** b[2]
    np.testing.assert_allclose(law.error(("q",), n), expected, rtol=1e-12)
    np.testing.assert_allclose(law.error(("q",), 5e5), (0.1 * 5e5 / 1e5) ** -0.3 + 0.05, rtol=1e-12)


def test_fit_recovers_parameters_and_flags_extrapolation():
    truth = ScalingLaw(a=0.05, d=0.2, buckets={"hi": Bucket(-0.2, 4.0, 1e6), "lo": Bucket(-0.1, 10.0, 2e6)})
    rng = np.random.default_rng(0)
    observations = []
    for pool in [("hi",), ("lo",), ("hi", "lo")]:
        for n in np.geomspace(3e5, 3e7, 7):
            error = float(truth.error(pool, n)) + rng.normal(scale=5e-4)
            observations.append(Observation(pool=pool, samples_seen=float(n), error=error))
    fit = fit_scaling_law(observations, {"hi": 1e6, "lo": 2e6})
    assert fit.rmse < 1e-3
    np.testing.assert_allclose([fit.law.buckets["hi"].b, fit.law.buckets["lo"].b], [-0.2, -0.1], atol=0.02)
    np.testing.assert_allclose([fit.law.buckets["hi"].tau, fit.law.buckets["lo"].tau], [4.0, 10.0], rtol=0.3)
    np.testing.assert_allclose([fit.law.a, fit.law.d], [0.05, 0.2], rtol=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inside = fit.predict(("hi",), 1e7)
    assert not inside.extrapolated and inside.low < inside.accuracy < inside.high
    with pytest.warns(ExtrapolationWarning):
        far = fit.predict(("hi",), 1e9)
    assert far.extrapolated and (far.high - far.low) > 5 * (inside.high - inside.low)


def test_fit_validates_inputs():
    with pytest.raises(ValueError, match="unique size"):
        fit_scaling_law([Observation(("x",), 1e6, 0.5)] * 4, {})
    with pytest.raises(ValueError, match="bucket names"):
        TMARS_DATACOMP_MEDIUM.error(("nope",), 1e6)
