"""curation.scaling: the published Goyal et al. figures, the frontier, and fitting."""
import warnings

import numpy as np
import pytest

from curation.laws import Observation, Pool
from curation.scaling import (TMARS_DATACOMP_MEDIUM, TMARS_POOLS, Bucket, ExtrapolationWarning, ScalingLaw,
                              fit_goyal_law, union_weights)

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
    truth = ScalingLaw(a=5.0, d=0.2, buckets={"hi": Bucket(-0.2, 4.0, 1e6), "lo": Bucket(-0.1, 10.0, 2e6)})
    pools = [Pool("hi", 1_000_000), Pool("lo", 2_000_000)]
    rng = np.random.default_rng(0)
    observations = []
    for pool in [("hi",), ("lo",), ("hi", "lo")]:
        for n in np.geomspace(3e5, 3e7, 7):
            error = float(truth.error(pool, n)) + rng.normal(scale=5e-4)
            observations.append(Observation(union_weights(pools, pool), float(n), 1.0 - error))
    fit = fit_goyal_law(pools, observations, higher_is_better=True)
    assert fit.rmse < 1e-3
    np.testing.assert_allclose(fit.b, [-0.2, -0.1], atol=0.02)
    np.testing.assert_allclose(fit.tau, [4.0, 10.0], rtol=0.3)
    np.testing.assert_allclose([fit.a, fit.d], [5.0, 0.2], rtol=0.3)
    assert set(fit.provenance.values()) == {"pilot_runs"}
    np.testing.assert_allclose(fit.fitted(observations), [o.value for o in observations], atol=3e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inside = fit.predict({"hi": 1.0}, 1e7)
    assert not inside.extrapolated and inside.low < inside.value < inside.high
    np.testing.assert_allclose(inside.value, 1.0 - truth.error(("hi",), 1e7), atol=2e-3)
    with pytest.warns(ExtrapolationWarning):
        far = fit.predict({"hi": 1.0}, 1e9)
    assert far.extrapolated and (far.high - far.low) > 5 * (inside.high - inside.low)


def test_fit_validates_inputs():
    pools = [Pool("hi", 100), Pool("lo", 300)]
    with pytest.raises(ValueError, match="unknown pool"):
        fit_goyal_law(pools, [Observation({"x": 1.0}, 1e6, 0.5)] * 6, higher_is_better=True)
    with pytest.raises(ValueError, match="appear in no observation"):
        fit_goyal_law(pools, [Observation({"hi": 1.0}, 1e3 * (i + 1), 0.5) for i in range(6)], higher_is_better=True)
    with pytest.raises(ValueError, match=r"must be \{'hi': 0.25, 'lo': 0.75\}"):
        fit_goyal_law(pools, [Observation({"hi": 0.5, "lo": 0.5}, 1e3 * (i + 1), 0.5) for i in range(6)],
                      higher_is_better=True)
    with pytest.raises(ValueError, match="bucket names"):
        TMARS_DATACOMP_MEDIUM.error(("nope",), 1e6)
