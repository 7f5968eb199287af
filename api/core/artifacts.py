"""The service's artifact storage, configured from settings, and each tenant's view of it:
everything of a tenant lives under ``tenants/<tenant id>/``.

``ARTIFACT_URL=s3://bucket/prefix`` selects the object store (:mod:`curation.s3`; endpoint and
region from ``S3_ENDPOINT_URL`` / ``S3_REGION``, this host's bounded file cache and upload
scratch under ``ARTIFACT_CACHE_DIR``); without it artifacts are files under ``ARTIFACT_ROOT``."""
from __future__ import annotations

import functools
import os

from django.conf import settings

from curation.storage import LocalStorage, Storage


def artifact_store() -> Storage:
    if not settings.ARTIFACT_URL:
        return LocalStorage(settings.ARTIFACT_ROOT)
    return _object_store(settings.ARTIFACT_URL, settings.S3_ENDPOINT_URL, settings.S3_REGION,
                         str(settings.ARTIFACT_CACHE_DIR), settings.ARTIFACT_CACHE_BYTES, os.getpid())


@functools.lru_cache(maxsize=4)
def _object_store(url: str, endpoint_url: str, region: str, cache_dir: str, cache_bytes: int, pid: int) -> Storage:
    """One client per process and configuration (a client is thread-safe, not fork-safe: ``pid``)."""
    from curation.s3 import S3Storage

    return S3Storage.from_url(url, endpoint_url=endpoint_url, region=region, cache_dir=os.path.join(cache_dir, "objects"),
                              cache_bytes=cache_bytes, scratch=os.path.join(cache_dir, "scratch"))


def tenant_storage(tenant_id) -> Storage:
    """The storage seen under one tenant's prefix; a key can never leave it."""
    return artifact_store().scoped("tenants", tenant_id)
