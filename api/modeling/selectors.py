"""Reads for pilot runs, performance models and mixtures."""
from __future__ import annotations

from api.datasets.selectors import dataset_ref
from api.jobs.models import JobUnit
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.tenancy.models import Tenant
from curation.laws.backtest import backtest_summary
from curation.steps import PoolSpec, StoredModel


def performance_model_get(*, tenant: Tenant, model_id) -> PerformanceModel | None:
    return PerformanceModel.objects.for_tenant(tenant).select_related("corpus").filter(pk=model_id).first()


def mixture_get(*, tenant: Tenant, mixture_id) -> Mixture | None:
    return Mixture.objects.for_tenant(tenant).filter(pk=mixture_id).first()


def pilot_run_list(*, tenant: Tenant, corpus_id, metric: str | None = None):
    runs = PilotRun.objects.for_tenant(tenant).filter(corpus_id=corpus_id)
    return runs.filter(metric=metric) if metric else runs


def pilot_observations(*, tenant_id, corpus_id, metric: str) -> tuple[bool, list[dict]]:
    """The tenant's pilot runs of ``metric`` on a corpus as fit observations: ``(higher_is_better, [...])``."""
    runs = list(PilotRun.objects.for_tenant(tenant_id).filter(corpus_id=corpus_id, metric=metric))
    if not runs:
        raise ValueError(f"no pilot runs of metric {metric!r} on corpus {corpus_id}")
    return bool(runs[0].higher_is_better), [
        {"weights": r.mixture, "size": r.size, "value": r.value,
         "origin": "pilot_runs" if r.origin == PilotRun.Origin.USER else r.origin} for r in runs]


def stored_model(*, tenant_id, model_id) -> StoredModel:
    """A PerformanceModel as the mixture step reads it; its pools are those of the job that fitted it."""
    model = PerformanceModel.objects.for_tenant(tenant_id).select_related("corpus", "job").get(pk=model_id)
    spec = PoolSpec()
    if model.job is not None:
        fit = JobUnit.objects.for_tenant(tenant_id).filter(job=model.job, stage="fit", index=0).first()
        if fit is not None:
            spec = PoolSpec.from_dict(fit.output["model"]["pool_spec"]).resolved(str(model.job_id))
    return StoredModel(kind=model.kind, metric=model.metric, higher_is_better=model.higher_is_better,
                       parameters=model.parameters, pools=model.pools, provenance=model.provenance,
                       corpus=dataset_ref(model.corpus), pool_spec=spec,
                       backtest=backtest_summary(model.backtest))
