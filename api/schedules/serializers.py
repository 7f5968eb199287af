from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.core.fields import StrictIntegerField
from api.jobs.serializers import JobCreateSerializer, JobTemplateSerializer
from api.schedules.models import Schedule, ScheduleFiring
from api.schedules.selectors import schedule_next_run


#: Five fields separated by spaces (an empty cron, allowed too, means none).
CRON_PATTERN = r"^\s*[^\s\x00]+(\s+[^\s\x00]+){4}\s*$"
CRON_MAX_LENGTH = 100


@extend_schema_field({"type": "string", "pattern": CRON_PATTERN, "maxLength": CRON_MAX_LENGTH})
class CronField(serializers.CharField):
    """A cron expression, documented with its shape; api.schedules.services.cron_fields checks it
    (``invalid_cron``, naming the bad field: a finer answer than a pattern mismatch)."""


class ScheduleInputSerializer(serializers.Serializer):
    """Exactly one of ``cron`` and ``interval_seconds``; ``job_template`` is what ``POST /jobs/`` takes."""

    name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    cron = CronField(required=False, allow_blank=True, max_length=CRON_MAX_LENGTH, help_text="minute hour day-of-month month day-of-week, in UTC; e.g. '0 3 * * *'")
    interval_seconds = StrictIntegerField(required=False, allow_null=True, min_value=1,
                                          help_text="fire every N seconds (instead of cron)")
    job_template = JobTemplateSerializer(help_text="{kind, params}: validated exactly like POST /api/v1/jobs/")
    enabled = serializers.BooleanField(required=False, default=True, help_text="false pauses the schedule")

    def validate_job_template(self, value: dict) -> dict:
        # A PATCH is partial, and DRF makes the nested template partial too; a template is always whole.
        if "kind" not in value:
            raise serializers.ValidationError({"kind": [serializers.Field.default_error_messages["required"]]})
        return value


class JobRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()


class ScheduleSerializer(serializers.ModelSerializer):
    job_template = serializers.SerializerMethodField()
    next_run_at = serializers.SerializerMethodField()
    last_job = serializers.SerializerMethodField()
    firings = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = ["id", "name", "cron", "interval_seconds", "job_template", "enabled", "last_fired_at",
                  "next_run_at", "last_job", "firings", "created_at", "updated_at"]

    @extend_schema_field(JobCreateSerializer)
    def get_job_template(self, schedule: Schedule) -> dict:
        return {"kind": schedule.job_kind, "params": schedule.job_params}

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run_at(self, schedule: Schedule):
        value = schedule_next_run(schedule)
        return serializers.DateTimeField().to_representation(value) if value else None

    @extend_schema_field(JobRefSerializer(allow_null=True))
    def get_last_job(self, schedule: Schedule):
        job = schedule.last_job
        return {"id": str(job.pk), "status": job.status} if job else None

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_firings(self, schedule: Schedule) -> dict:
        return {"jobs_created": getattr(schedule, "jobs_created", 0),
                "skipped": getattr(schedule, "firings_skipped", 0),
                "failed": getattr(schedule, "firings_failed", 0)}


class ScheduleFiringSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduleFiring
        fields = ["fired_at", "outcome", "job", "reason"]
