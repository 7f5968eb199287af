"""Tenant scoping in one place: a context variable and a manager that fails closed.

``Model.objects`` on a tenant-owned model refuses to build a query unless a tenant is
in scope (``tenant_scope(...)``) or named (``.for_tenant(...)``): a forgotten filter
is an error, never a leak. ``Model.unscoped_objects`` is the deliberate, loud bypass
(workers loading a row by id before they set the scope, staff tools).
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from django.db import models

_current_tenant: ContextVar[uuid.UUID | None] = ContextVar("current_tenant", default=None)


class TenantScopeError(RuntimeError):
    pass


@contextmanager
def tenant_scope(tenant_id: uuid.UUID | str) -> Iterator[None]:
    token = _current_tenant.set(uuid.UUID(str(tenant_id)))
    try:
        yield
    finally:
        _current_tenant.reset(token)


def current_tenant_id() -> uuid.UUID | None:
    return _current_tenant.get()


class TenantScopedManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        tenant_id = current_tenant_id()
        if tenant_id is None:
            raise TenantScopeError(
                f"{self.model.__name__}.objects used without a tenant scope; use .for_tenant(tenant), "
                "`with tenant_scope(tenant_id)` or, deliberately, unscoped_objects"
            )
        return super().get_queryset().filter(tenant_id=tenant_id)

    def for_tenant(self, tenant) -> models.QuerySet:
        tenant_id = getattr(tenant, "pk", tenant)
        if tenant_id is None:
            raise TenantScopeError(f"{self.model.__name__}.objects.for_tenant(None)")
        return super().get_queryset().filter(tenant_id=tenant_id)


class TenantOwned(models.Model):
    """Base for every row that belongs to a tenant."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedManager()
    unscoped_objects = models.Manager()

    class Meta:
        abstract = True
        # Django internals (admin, cascades, related lookups) use the plain manager.
        default_manager_name = "unscoped_objects"
        base_manager_name = "unscoped_objects"
