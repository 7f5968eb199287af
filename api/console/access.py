"""Which tenants a console user may see: their memberships, or every tenant for staff.

Every console page resolves its tenant from the URL through :func:`console_tenant`; a
tenant the user may not see is a 404, exactly like another tenant's object in the API.
The session remembers the tenant last opened (:func:`remember_tenant`), so that a page
typed without a tenant opens in it (:func:`current_tenant`), always re-checked here.
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


#: The session key of the tenant the user last opened in the console.
CURRENT_TENANT = "console_tenant"


def remember_tenant(request, tenant: Tenant) -> None:
    if request.session.get(CURRENT_TENANT) != str(tenant.pk):
        request.session[CURRENT_TENANT] = str(tenant.pk)


def sole_tenant(user) -> Tenant | None:
    """A member's only tenant (staff, who see every tenant, always choose)."""
    if user.is_staff:
        return None
    tenants = list(console_tenants(user)[:2])
    return tenants[0] if len(tenants) == 1 else None


def current_tenant(request) -> Tenant | None:
    """The tenant last opened in this session if the user may still see it, else their only
    tenant, else ``None`` (they choose)."""
    remembered = request.session.get(CURRENT_TENANT)
    if remembered:
        try:
            tenant = console_tenant(request.user, remembered)
        except Http404:
            tenant = None
        if tenant is not None:
            return tenant
    return sole_tenant(request.user)
