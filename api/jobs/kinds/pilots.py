"""``pilots``: tiny language models trained on a designed set of mixtures of a corpus's sources,
stored as the tenant's pilot runs (origin ``tiny_lm``) for a later ``fit`` with ``metric``.

One unit per run on the ``gpu`` queue (CUDA where the worker has one; :mod:`curation.tinylm`),
then a ``summary``. The runs' metric is ``tiny_lm_cross_entropy:<job id>`` (nats per token of
the job's benchmarks; lower is better), so runs against other targets never mix; the job's
``estimate`` gives tokens and seconds per run before any work.
"""
from __future__ import annotations

import uuid

from rest_framework import serializers

from api.core.fields import SeedField
from api.jobs.kinds.base import JobKind, corpus_and_benchmarks, resolve_dataset
from api.jobs.kinds.modeling import pilot_estimate, pilot_params
from api.jobs.kinds.tinylm import PilotFields, config_of, record_throughput
from api.modeling.models import PilotRun
from curation import plans
from curation.embedders import DEFAULT_EMBEDDER
from curation.steps.model import FitParams
from curation.tinylm import METRIC


class PilotsParams(PilotFields):
    pilot_model = None
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    seed = SeedField()


def pilots_metric(job_id) -> str:
    """The metric name of a pilots job's runs."""
    return f"{METRIC}:{job_id}"


class PilotsKind(JobKind):
    name = "pilots"
    params_serializer = PilotsParams

    def normalise(self, *, tenant, data):
        corpus = resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",))
        benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
        return {**data, "pilot_model": "tiny_lm", "corpus": str(corpus.pk),
                "benchmarks": [str(b.pk) for b in benchmarks]}

    def estimate(self, *, tenant, params):
        return pilot_estimate(tenant, params, self.fit(tenant.pk, params))

    def plan(self, *, tenant_id, params):
        return plans.pilots_plan(self.fit(tenant_id, params))

    @staticmethod
    def fit(tenant_id, params: dict) -> FitParams:
        """The pilots as a fit's (source pools; the embedder is never used: no OT)."""
        corpus, benchmarks = corpus_and_benchmarks(tenant_id, params)
        return FitParams(corpus, benchmarks, DEFAULT_EMBEDDER, seed=params["seed"], **pilot_params(params))

    def record(self, *, job, stage, output):
        """Each run as a PilotRun (one per unit: a redelivered unit updates it); the summary names the metric."""
        if stage == "pilots":
            run, observation = output["run"], output["observations"][0]
            record_throughput(run, config_of(job.params))
            PilotRun.objects.for_tenant(job.tenant_id).update_or_create(
                pk=uuid.uuid5(job.pk, f"pilot-{run['index']}"),
                defaults={"tenant_id": job.tenant_id, "corpus_id": job.params["corpus"],
                          "mixture": observation["weights"], "size": observation["size"],
                          "metric": pilots_metric(job.pk), "value": observation["value"], "higher_is_better": False,
                          "origin": PilotRun.Origin.TINY_LM})
            return output
        return output | {"metric": pilots_metric(job.pk)} if stage == "summary" else output
