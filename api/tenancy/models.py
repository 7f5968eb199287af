"""Tenants, their members and API keys."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from api.core.scope import TenantOwned


def default_max_stored_bytes() -> int:
    return settings.TENANT_DEFAULT_MAX_STORED_BYTES


def default_max_documents() -> int:
    return settings.TENANT_DEFAULT_MAX_DOCUMENTS


def default_max_concurrent_jobs() -> int:
    return settings.TENANT_DEFAULT_MAX_CONCURRENT_JOBS


def default_max_pilot_tokens() -> int:
    return settings.TENANT_DEFAULT_MAX_PILOT_TOKENS


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    max_stored_bytes = models.BigIntegerField(default=default_max_stored_bytes)
    max_documents = models.BigIntegerField(default=default_max_documents)
    max_concurrent_jobs = models.PositiveIntegerField(default=default_max_concurrent_jobs)
    max_pilot_tokens = models.BigIntegerField(default=default_max_pilot_tokens, help_text=(
        "tokens one job may train tiny-LM pilots on (all its runs together)"))
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="tenants")

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A console user's access to a tenant."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="unique_membership")]


class ApiKey(TenantOwned):
    """A bearer key ``cur_<prefix>_<secret>``; only a salted SHA-256 of it is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    salt = models.CharField(max_length=32)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"cur_{self.prefix}_… ({self.name or 'unnamed'})"
