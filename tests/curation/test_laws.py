"""curation.laws: the registry, the front doors, storing and restoring every law, Goyal through the protocol."""
from __future__ import annotations

import json

import numpy as np
import pytest

from curation.laws import LAWS, Observation, PerformanceLaw, Pool, fit_law, law_class, restore_law
from curation.laws.regression import MixingLaw
from curation.mixture import MixtureLaw
from curation.scaling import TMARS_DATACOMP_MEDIUM, TMARS_POOLS, GoyalLaw, union_weights
from tests.curation.test_scaling import PUBLISHED

POOLS = (Pool("a", 100, ot=0.5, quality=0.9), Pool("b", 300, ot=0.7, quality=0.4), Pool("c", 50, ot=0.6, quality=0.2))
BUDGETS = (30.0, 400.0, 5000.0)


def mixture_law() -> MixtureLaw:
    return MixtureLaw(pools=POOLS, c=0.9, A=0.3, beta=0.4, gamma=1.0, eta=0.5, tau=2.0, higher_is_better=True,
                      rmse=0.01, observed_sizes=(10.0, 1e3), observed_repetitions=3.0,
                      provenance={"c": "pilot_runs", "tau": "defaults"})


def goyal_law() -> GoyalLaw:
    return GoyalLaw(pools=POOLS, a=1e5, d=0.2, b=(-0.2, -0.1, -0.15), tau=(4.0, 10.0, 2.0), higher_is_better=False,
                    rmse=0.002, observed_sizes=(20.0, 2e3), observed_repetitions=5.0, far=2.0,
                    provenance={"a": "proxy", "d": "proxy", "b": "proxy", "tau": "proxy"})


def mixing_law() -> MixingLaw:
    return MixingLaw(pools=POOLS, sizes=(100.0, 1000.0), c=(2.0, 1.5), t=((0.1, 0.5, 0.3), (-0.2, 0.4, 0.0)),
                     higher_is_better=False, rmse=0.01, observed_sizes=(100.0, 1000.0), observed_repetitions=4.0,
                     provenance={"c": "pilot_runs", "t": "pilot_runs"})


#: One example of every registered law; a law registered without one fails test_every_law_has_an_example.
EXAMPLES = {"effective_data": mixture_law, "goyal": goyal_law, "mixing_law": mixing_law}


def test_the_registry_holds_the_laws_by_kind():
    assert LAWS == {"effective_data": MixtureLaw, "goyal": GoyalLaw, "mixing_law": MixingLaw}
    assert all(issubclass(cls, PerformanceLaw) and cls.kind == kind for kind, cls in LAWS.items())
    assert law_class("goyal") is GoyalLaw


def test_every_law_has_an_example():
    assert sorted(EXAMPLES) == sorted(LAWS)


def test_unknown_kinds_are_refused_naming_the_known_ones():
    for call in (lambda: restore_law("regmix", {"parameters": {}, "pools": []}),
                 lambda: fit_law("regmix", POOLS, [], higher_is_better=True),
                 lambda: law_class(None)):
        with pytest.raises(ValueError, match=r"unknown performance-law kind .*\['effective_data', 'goyal', 'mixing_law'\]"):
            call()
    stored = mixture_law().to_stored()
    with pytest.raises(ValueError, match="not a 'goyal' law"):
        restore_law("goyal", stored)


def _mixtures(law: PerformanceLaw) -> list[dict]:
    """Mixtures every law can predict: single pools and the law's own optimum at each budget."""
    optimal = [dict(zip(law.names, law.optimize(budget).weights)) for budget in BUDGETS]
    return [{name: 1.0} for name in law.names] + optimal


@pytest.mark.filterwarnings("ignore::curation.scaling.ExtrapolationWarning")
@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_stored_laws_come_back_with_identical_predictions(kind):
    law = EXAMPLES[kind]()
    stored = json.loads(json.dumps(law.to_stored()))  # what a JSONField gives back
    assert stored["kind"] == kind and stored["fit_error"] == law.rmse
    again = restore_law(kind, stored)
    assert type(again) is LAWS[kind]
    assert again.parameters() == law.parameters() and again.pool_rows() == law.pool_rows()
    assert dict(again.provenance) == dict(law.provenance)
    for weights in _mixtures(law):
        for budget in BUDGETS + (1e6,):
            ours, theirs = law.predict(weights, budget, level=0.8), again.predict(weights, budget, level=0.8)
            np.testing.assert_allclose([theirs.value, theirs.low, theirs.high, theirs.outside],
                                       [ours.value, ours.low, ours.high, ours.outside], rtol=1e-12)
            assert theirs.extrapolated == ours.extrapolated
    for budget in BUDGETS:
        np.testing.assert_allclose(again.optimize(budget).shown, law.optimize(budget).shown, rtol=1e-12)
    assert again.frontier(BUDGETS) == law.frontier(BUDGETS)


@pytest.mark.filterwarnings("ignore::curation.scaling.ExtrapolationWarning")
@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_fit_law_dispatches_and_fitted_values_match_predictions(kind):
    truth = EXAMPLES[kind]()
    observations = [Observation(weights, size, truth.predict(weights, size).value)
                    for size in (20.0, 80.0, 320.0, 1280.0) for weights in _mixtures(truth)]
    options = {} if kind == "mixing_law" else {"loss": "linear"}  # its per-size fits are plain least squares
    law = fit_law(kind, POOLS, observations, higher_is_better=truth.higher_is_better, **options)
    assert type(law) is LAWS[kind] and set(law.provenance.values()) == {"pilot_runs"}
    expected = [law.predict(o.weights, o.size).value for o in observations]
    np.testing.assert_allclose(law.fitted(observations), expected, rtol=1e-12)
    np.testing.assert_allclose(law.fitted(observations), [o.value for o in observations], atol=5e-3)


def test_fitted_is_the_effective_data_expression_it_replaces():
    law = mixture_law()
    observations = [Observation({"a": 0.2, "b": 0.8}, 70.0, 0.5), Observation({"c": 1.0}, 700.0, 0.6)]
    old = law.metric_of(law.effective_data(np.stack([law.weights_vector(o.weights) * o.size for o in observations])))
    np.testing.assert_array_equal(law.fitted(observations), old)


def test_goyal_reads_a_mixture_as_whole_pools_combined():
    law = goyal_law()
    combined = union_weights(law.pools, ["a", "b"])
    np.testing.assert_allclose(list(combined.values()), [0.25, 0.75])
    np.testing.assert_allclose(law.predict(combined, 400.0).value, law.scaling_law.error(("a", "b"), 400.0))
    with pytest.raises(ValueError, match="weighted by its unique documents"):
        law.predict({"a": 0.5, "b": 0.5}, 400.0)
    allocation = law.optimize(5000.0)
    chosen = allocation.weights > 0
    np.testing.assert_allclose(allocation.weights[chosen], law.unique[chosen] / law.unique[chosen].sum())


def _published() -> GoyalLaw:
    """The T-MARS fit of DESIGN.md 3.5, stored and restored through the protocol."""
    return restore_law("goyal", json.loads(json.dumps(GoyalLaw.from_scaling_law(TMARS_DATACOMP_MEDIUM).to_stored())))


@pytest.mark.parametrize("samples_seen", sorted(PUBLISHED))
def test_goyal_reproduces_the_published_figures_through_the_protocol(samples_seen):
    law = _published()
    for pool, buckets in TMARS_POOLS.items():
        prediction = law.predict(union_weights(law.pools, buckets), samples_seen)
        np.testing.assert_allclose(100 * prediction.value, PUBLISHED[samples_seen][pool], atol=1e-3)
    best = max(PUBLISHED[samples_seen], key=PUBLISHED[samples_seen].get)
    allocation = law.optimize(samples_seen)
    assert [n for n, w in zip(allocation.pools, allocation.weights) if w > 0] == list(TMARS_POOLS[best])
    np.testing.assert_allclose(100 * law.frontier([samples_seen])[0]["value"], PUBLISHED[samples_seen][best],
                               atol=1e-3)


def test_goyal_best_pool_grows_with_the_budget():
    rows = _published().frontier([3e7, 3e8, 3e9])
    assert [len(row["weights"]) for row in rows] == [1, 2, 3]  # top10, top20, top30 (DESIGN.md 3.5)


def test_the_api_restores_a_stored_model_by_its_kind():
    from api.core.errors import ApplicationError
    from api.modeling.models import PerformanceModel
    from api.modeling.services import performance_model_law

    for kind, example in EXAMPLES.items():
        stored = example().to_stored()
        model = PerformanceModel(kind=kind, parameters=stored["parameters"], pools=stored["pools"],
                                 provenance=stored["provenance"])
        law = performance_model_law(model)
        assert type(law) is LAWS[kind] and law.parameters() == stored["parameters"]
    with pytest.raises(ApplicationError) as error:
        performance_model_law(PerformanceModel(kind="regmix", parameters={}, pools=[]))
    assert error.value.code == "unknown_model_kind" and error.value.status_code == 409
