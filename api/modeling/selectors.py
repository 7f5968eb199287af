"""Reads for pilot runs, performance models and mixtures."""
from __future__ import annotations

from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.tenancy.models import Tenant


def performance_model_get(*, tenant: Tenant, model_id) -> PerformanceModel | None:
    return PerformanceModel.objects.for_tenant(tenant).select_related("corpus").filter(pk=model_id).first()


def mixture_get(*, tenant: Tenant, mixture_id) -> Mixture | None:
    return Mixture.objects.for_tenant(tenant).filter(pk=mixture_id).first()


def pilot_run_list(*, tenant: Tenant, corpus_id, metric: str | None = None):
    runs = PilotRun.objects.for_tenant(tenant).filter(corpus_id=corpus_id)
    return runs.filter(metric=metric) if metric else runs
