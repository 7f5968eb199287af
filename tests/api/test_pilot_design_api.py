"""``POST /api/v1/pilot-designs/``: the pilot runs to train, valid as pilot runs, and enough to identify
the repetition half-life of a known law."""
from __future__ import annotations

import numpy as np

from curation.laws import Observation, Pool, fit_law
from curation.mixture import MixtureLaw
from tests.api.helpers import error_of, small_corpus, upload


def test_a_design_covers_every_size_pool_and_the_simplex_and_uploads_as_pilot_runs(client_a, client_b):
    corpus = upload(client_a, "corpora", "c.jsonl", small_corpus(30)).json()
    response = client_a.post("/api/v1/pilot-designs/", {"corpus": corpus["id"], "runs": 12}, format="json")
    assert response.status_code == 200, response.json()
    design = response.json()
    assert design["pools"] == {"alpha": 10, "beta": 10, "gamma": 10} and len(design["runs"]) == 12
    sizes = sorted({run["size"] for run in design["runs"]})
    assert sizes == [3.0, 12.0, 48.0], "0.1, 0.4 and 1.6 x the 30 documents"
    natural = [run for run in design["runs"] if run["purpose"] == "natural"]
    assert sorted(run["size"] for run in natural) == sizes
    singles = [run for run in design["runs"] if run["purpose"] == "single_pool"]
    assert {next(iter(run["mixture"])) for run in singles} == {"alpha", "beta", "gamma"}
    assert all(run["size"] == 48.0 and run["repetitions"] == 4.8 for run in singles), "repeated: tau"
    spread = [run for run in design["runs"] if run["purpose"] == "space_filling"]
    assert {run["size"] for run in spread} == set(sizes) and len({tuple(run["mixture"].items()) for run in spread}) == 6
    for run in design["runs"]:
        assert abs(sum(run["mixture"].values()) - 1) < 1e-9
        assert run["tokens"] == run["size"] * design["tokens_per_sample"]
    uploaded = [{"corpus": corpus["id"], "mixture": run["mixture"], "size": run["size"], "metric": "accuracy",
                 "value": 0.5} for run in design["runs"]]
    assert client_a.post("/api/v1/pilot-runs/", uploaded, format="json").status_code == 201

    assert client_b.post("/api/v1/pilot-designs/", {"corpus": corpus["id"]}, format="json").status_code == 404
    refused = client_a.post("/api/v1/pilot-designs/", {"corpus": corpus["id"], "sizes": [10, 10]}, format="json")
    assert refused.status_code == 400 and "sizes" in error_of(refused)["detail"]["fields"]
    refused = client_a.post("/api/v1/pilot-designs/", {"corpus": corpus["id"], "runs": 3}, format="json")
    assert refused.status_code == 400 and "runs" in error_of(refused)["detail"]["fields"]


def test_the_designed_runs_identify_a_known_laws_half_life():
    """Pilots on the design, generated from a known law with tau = 3: the fit finds tau, not a default."""
    from curation.pilots import pilot_design

    documents = {"a": 400, "b": 250, "c": 120, "d": 60}
    pools = [Pool(name, n, ot=ot) for (name, n), ot in zip(documents.items(), (0.2, 0.5, 0.3, 0.9))]
    truth = MixtureLaw(pools=tuple(pools), c=1.5, A=4.0, beta=0.4, gamma=0.6, eta=0.0, tau=3.0,
                       higher_is_better=False, observed_sizes=(1.0, 1e9), observed_repetitions=1e6)
    rng = np.random.default_rng(0)
    observations = [Observation(weights=run["mixture"], size=run["size"], origin="pilot_runs",
                                value=truth.predict(run["mixture"], run["size"]).value + float(rng.normal(0, 0.002)))
                    for run in pilot_design(documents, runs=24)]
    law = fit_law("effective_data", pools, observations, higher_is_better=False)
    assert law.provenance["tau"] == "pilot_runs" and "tau" not in law.at_bound
    assert abs(np.log(law.tau / 3.0)) < np.log(1.5), law.tau
