from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from api.jobs.kinds import KINDS
from api.jobs.models import Job
from api.jobs.selectors import job_unit_work, job_units_done


class JobCreateSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text=f"One of: {', '.join(sorted(KINDS))}.")
    params = serializers.DictField(required=False, default=dict, help_text="Parameters of the kind; embed: "
                                   "{corpus|benchmark: id, embedder?: 'minilm'|'hashing'|'hashing:DIM', "
                                   "batch_size?: int}.")


def _kind_request(name: str) -> type[serializers.Serializer]:
    """``{"kind": name, "params": ...}`` with the kind's own params serializer (its bounds and choices)."""
    params = KINDS[name].params_serializer
    required = any(field.required for field in params().fields.values())
    return type(f"{name.capitalize()}Job", (serializers.Serializer,), {
        "kind": serializers.ChoiceField(choices=[name]),
        "params": params(required=required, help_text=f"parameters of {name} (DESIGN.md section 3)"),
        "__doc__": f"A {name} job."})


#: What the schema documents as the body of ``POST /api/v1/jobs/`` (and a schedule's ``job_template``):
#: one object per kind, told apart by ``kind``; :class:`JobCreateSerializer` validates the kind, the
#: kind's params serializer the params (api/jobs/kinds/), so the two say the same.
JOB_REQUEST = PolymorphicProxySerializer(component_name="JobCreate", resource_type_field_name="kind",
                                         serializers={name: _kind_request(name) for name in sorted(KINDS)})


@extend_schema_field(JOB_REQUEST)
class JobTemplateSerializer(JobCreateSerializer):
    """A job template inside another body (a schedule's), documented as :data:`JOB_REQUEST`."""


class ProgressSerializer(serializers.Serializer):
    shards_done = serializers.IntegerField()
    shards_total = serializers.IntegerField()
    fraction = serializers.FloatField()


class TimingsSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    elapsed_seconds = serializers.FloatField(allow_null=True)


class UnitWorkSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="work done inside the units that report it (tiny-LM pilots: tokens)")
    total = serializers.IntegerField()
    units = serializers.IntegerField(help_text="units that reported work")


class StageProgressSerializer(serializers.Serializer):
    name = serializers.CharField()
    queue = serializers.CharField()
    units_done = serializers.IntegerField()
    units = serializers.IntegerField()
    work = UnitWorkSerializer(allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    """A job; ``progress`` counts units over all stages, ``stages`` breaks it down per stage."""

    progress = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    stages = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "kind", "params", "status", "stage", "progress", "stages", "timings", "error", "result",
                  "estimate"]

    @extend_schema_field(StageProgressSerializer(many=True))
    def get_stages(self, job: Job) -> list[dict]:
        done = job_units_done(job=job)
        return [{"name": s["name"], "queue": s["queue"], "units_done": done.get(s["name"], 0), "units": s["units"],
                 "work": job_unit_work(job=job, stage=s["name"], units=s["units"])} for s in job.plan]

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, job: Job) -> dict:
        fraction = job.shards_done / job.shards_total if job.shards_total else float(job.status == "succeeded")
        return {"shards_done": job.shards_done, "shards_total": job.shards_total, "fraction": round(fraction, 4)}

    @extend_schema_field(TimingsSerializer)
    def get_timings(self, job: Job) -> dict:
        elapsed = None
        if job.started_at:
            elapsed = round(((job.finished_at or timezone.now()) - job.started_at).total_seconds(), 3)
        return {"created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
                "elapsed_seconds": elapsed}
