from __future__ import annotations

import pytest
from django.core.management import call_command

from api.core.scope import TenantScopeError, tenant_scope
from api.core.views import TenantScopedViewSet
from api.datasets.models import Dataset
from api.tenancy.models import ApiKey, Tenant
from api.tenancy.services import api_key_create, api_key_revoke, api_key_verify, hash_secret


def test_key_is_shown_once_and_only_a_salted_hash_is_stored(tenant_a):
    tenant, secret = tenant_a
    key = ApiKey.unscoped_objects.get(tenant=tenant)
    assert secret.startswith(f"cur_{key.prefix}_")
    assert secret.split("_", 2)[2] not in (key.secret_hash, key.salt)
    assert key.secret_hash == hash_secret(key.salt, secret.split("_", 2)[2])
    other = api_key_create(tenant=tenant)
    assert other.api_key.salt != key.salt and other.api_key.prefix != key.prefix


def test_verify_updates_last_used_and_rejects_tampering_and_revoked(tenant_a):
    tenant, secret = tenant_a
    key = api_key_verify(presented=secret)
    assert key is not None and key.tenant == tenant and key.last_used_at is not None
    assert api_key_verify(presented=secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    api_key_revoke(tenant=tenant, key_id=key.pk)
    assert api_key_verify(presented=secret) is None


def test_scoped_manager_fails_closed_without_a_tenant(tenant_a):
    with pytest.raises(TenantScopeError):
        list(Dataset.objects.all())
    with pytest.raises(TenantScopeError):
        Dataset.objects.filter(name="x").exists()
    with tenant_scope(tenant_a[0].pk):
        assert list(Dataset.objects.all()) == []


def test_base_view_cannot_be_given_its_own_queryset():
    with pytest.raises(TypeError, match="must not override get_queryset"):
        class LeakyView(TenantScopedViewSet):  # noqa: F841 - defining it is the test
            def get_queryset(self):
                return Dataset.unscoped_objects.all()


def test_management_commands_print_working_keys(db, capsys):
    call_command("create_tenant", "acme")
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1].split()[-1]
    assert api_key_verify(presented=secret).tenant.name == "acme"
    call_command("create_api_key", "acme", "--name", "ci")
    second = capsys.readouterr().out.strip().split()[-1]
    assert second != secret and api_key_verify(presented=second).name == "ci"
    tenant = Tenant.objects.get(name="acme")
    call_command("create_api_key", str(tenant.pk))
    assert api_key_verify(presented=capsys.readouterr().out.strip().split()[-1]).tenant == tenant


def test_revoke_through_another_tenant_is_not_found(tenant_a, tenant_b):
    from api.core.errors import ApplicationError

    key = ApiKey.unscoped_objects.get(tenant=tenant_a[0])
    with pytest.raises(ApplicationError) as excinfo:
        api_key_revoke(tenant=tenant_b[0], key_id=key.pk)
    assert excinfo.value.status_code == 404
    assert ApiKey.unscoped_objects.get(pk=key.pk).revoked_at is None
