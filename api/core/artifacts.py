"""The service's artifact storage, configured from settings (``ARTIFACT_ROOT``), and each
tenant's view of it: everything of a tenant lives under ``tenants/<tenant id>/``."""
from __future__ import annotations

from django.conf import settings

from curation.storage import LocalStorage, Storage


def artifact_store() -> Storage:
    return LocalStorage(settings.ARTIFACT_ROOT)


def tenant_storage(tenant_id) -> Storage:
    """The storage seen under one tenant's prefix; a key can never leave it."""
    return artifact_store().scoped("tenants", tenant_id)
