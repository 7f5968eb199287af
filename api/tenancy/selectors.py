"""Reads for tenants and API keys."""
from __future__ import annotations

from django.db.models import QuerySet

from api.tenancy.models import ApiKey, Tenant


def api_key_list(*, tenant: Tenant) -> QuerySet[ApiKey]:
    """The tenant's keys, active ones first, newest first."""
    return ApiKey.objects.for_tenant(tenant).order_by("revoked_at", "-created_at")
