"""Writes for tenants and API keys."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from api.core import lockout
from api.core.errors import ApplicationError
from api.tenancy.models import ApiKey, Tenant

KEY_PREFIX = "cur_"


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key; ``secret`` is the only time the full key exists."""

    api_key: ApiKey
    secret: str


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def api_key_create(*, tenant: Tenant, name: str = "") -> IssuedKey:
    prefix = secrets.token_hex(4)
    while ApiKey.unscoped_objects.filter(prefix=prefix).exists():
        prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    key = ApiKey.objects.for_tenant(tenant).create(
        tenant=tenant, name=name, prefix=prefix, salt=salt, secret_hash=hash_secret(salt, secret)
    )
    return IssuedKey(api_key=key, secret=f"{KEY_PREFIX}{prefix}_{secret}")


def api_key_verify(*, presented: str, address: str = "") -> ApiKey | None:
    """The active key matching ``presented`` (constant-time compare), else ``None``.

    Failures are counted by the caller's ``address`` and by the key prefix presented
    (:data:`api.core.lockout.API_KEY`); once either has too many, this raises a 429
    :class:`ApplicationError` before looking at the key, even a valid one. A valid key
    does not clear its prefix's failures: its own traffic would otherwise let a guesser go on.
    """
    prefix, _, secret = presented.removeprefix(KEY_PREFIX).partition("_")
    prefix = prefix if presented.startswith(KEY_PREFIX) else None
    lockout.API_KEY.check(address=address, account=prefix)
    key = None
    if prefix is not None:
        key = ApiKey.unscoped_objects.select_related("tenant").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(key.salt, secret)):
        lockout.API_KEY.failed(address=address, account=prefix)
        return None
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.unscoped_objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_revoke(*, tenant: Tenant, key_id) -> ApiKey:
    key = ApiKey.objects.for_tenant(tenant).filter(pk=key_id).first()
    if key is None:
        raise ApplicationError("not_found", "no such API key", status_code=404)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


@transaction.atomic
def api_key_rotate(*, tenant: Tenant, name: str) -> tuple[IssuedKey, int]:
    """A new key named ``name``, and the tenant's other active keys of that name revoked
    (their secrets were shown once and are not stored): returns the key and how many were revoked."""
    revoked = ApiKey.objects.for_tenant(tenant).filter(name=name, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
    return api_key_create(tenant=tenant, name=name), revoked


@transaction.atomic
def tenant_create(*, name: str, key_name: str = "initial") -> IssuedKey:
    if Tenant.objects.filter(name=name).exists():
        raise ApplicationError("tenant_exists", f"a tenant named {name!r} already exists", status_code=409)
    tenant = Tenant.objects.create(name=name)
    return api_key_create(tenant=tenant, name=key_name)
