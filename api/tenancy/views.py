from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api.datasets.selectors import dataset_usage
from api.jobs.selectors import job_counts


class UsageView(APIView):
    """The calling tenant's quotas and current usage."""

    @extend_schema(responses=inline_serializer("Usage", {
        "tenant": serializers.DictField(), "quotas": serializers.DictField(), "jobs": serializers.DictField(),
        "datasets": serializers.IntegerField()}))
    def get(self, request):
        tenant = request.auth.tenant
        usage = dataset_usage(tenant=tenant)
        jobs = job_counts(tenant=tenant)
        active = jobs["queued"] + jobs["running"]
        return Response({
            "tenant": {"id": str(tenant.pk), "name": tenant.name},
            "quotas": {
                "stored_bytes": {"used": usage["stored_bytes"], "limit": tenant.max_stored_bytes},
                "documents": {"used": usage["documents"], "limit": tenant.max_documents},
                "concurrent_jobs": {"used": active, "limit": tenant.max_concurrent_jobs},
            },
            "datasets": usage["datasets"],
            "jobs": jobs,
        })
