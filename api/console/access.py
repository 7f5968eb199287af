"""Which tenants a console user may see: their memberships, or every tenant for staff.

Every console page resolves its tenant from the URL through :func:`console_tenant`; a
tenant the user may not see is a 404, exactly like another tenant's object in the API.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404

from api.tenancy.models import Tenant


def console_tenants(user) -> QuerySet[Tenant]:
    if not user.is_authenticated:
        return Tenant.objects.none()
    if user.is_staff:
        return Tenant.objects.order_by("name")
    return Tenant.objects.filter(members=user).order_by("name")


def console_tenant(user, tenant_id) -> Tenant:
    try:
        tenant = console_tenants(user).filter(pk=tenant_id).first()
    except ValidationError:  # a malformed id is none of the user's tenants
        tenant = None
    if tenant is None:
        raise Http404("no such tenant")
    return tenant
