from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.core.views import TenantScopedViewSet
from api.jobs import services
from api.jobs.models import Job
from api.jobs.serializers import JOB_CREATE_REQUEST, JobDryRunSerializer, JobRequestSerializer, JobSerializer


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Curation jobs: create (202), or with ``dry_run`` only plan and estimate one (200); follow progress
    (with ``timings.eta_seconds``), cancel, retry. Filter with ``?status=`` and ``?kind=``."""

    model = Job
    serializer_class = JobSerializer

    query_filters = ("status", "kind")

    @extend_schema(request=JOB_CREATE_REQUEST, responses={202: JobSerializer, 200: JobDryRunSerializer})
    def create(self, request):
        form = JobRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        job_request = {"tenant": self.tenant, "kind": form.validated_data["kind"],
                       "params": form.validated_data["params"]}
        if form.validated_data["dry_run"]:
            return Response(JobDryRunSerializer(services.job_dry_run(**job_request)).data, status=status.HTTP_200_OK)
        job = services.job_create(**job_request)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(JobSerializer(services.job_cancel(job=self.get_object())).data)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        job = services.job_retry(job=self.get_object())
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
