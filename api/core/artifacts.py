"""The service's artifact store, configured from settings (``ARTIFACT_ROOT``)."""
from __future__ import annotations

from django.conf import settings

from curation.storage import ArtifactStore


def artifact_store() -> ArtifactStore:
    return ArtifactStore(settings.ARTIFACT_ROOT)
