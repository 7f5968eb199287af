from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from api.jobs.estimates import job_eta
from api.jobs.kinds import KINDS
from api.jobs.models import Job
from api.jobs.selectors import job_unit_work, job_units_done


class JobCreateSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text=f"One of: {', '.join(sorted(KINDS))}.")
    params = serializers.DictField(required=False, default=dict, help_text="Parameters of the kind; embed: "
                                   "{corpus|benchmark: id, embedder?: 'minilm'|'hashing'|'hashing:DIM', "
                                   "batch_size?: int}.")


DRY_RUN_HELP = ("true: validate exactly as a real create (the same 400 / 403 / 404 / 429 answers) and answer 200 "
                "with the plan and its estimate, creating no job, enqueueing nothing and writing no artifact")


class JobRequestSerializer(JobCreateSerializer):
    """The body of ``POST /api/v1/jobs/``: a job, or with ``dry_run`` its plan and estimate only."""

    dry_run = serializers.BooleanField(required=False, default=False, help_text=DRY_RUN_HELP)


def _kind_request(name: str, *, dry_run: bool = False) -> type[serializers.Serializer]:
    """``{"kind": name, "params": ...}`` with the kind's own params serializer (its bounds and choices),
    and ``dry_run`` for ``POST /api/v1/jobs/`` itself."""
    params = KINDS[name].params_serializer
    required = any(field.required for field in params().fields.values())
    fields = {"kind": serializers.ChoiceField(choices=[name]),
              "params": params(required=required, help_text=f"parameters of {name} (DESIGN.md section 3)"),
              "__doc__": f"A {name} job."}
    if dry_run:
        fields["dry_run"] = serializers.BooleanField(required=False, default=False, help_text=DRY_RUN_HELP)
    return type(f"{name.capitalize()}Job{'Submit' if dry_run else ''}", (serializers.Serializer,), fields)


#: What the schema documents as a schedule's ``job_template``: one object per kind, told apart by
#: ``kind``; :class:`JobCreateSerializer` validates the kind, the kind's params serializer the params
#: (api/jobs/kinds/), so the two say the same.
JOB_REQUEST = PolymorphicProxySerializer(component_name="JobCreate", resource_type_field_name="kind",
                                         serializers={name: _kind_request(name) for name in sorted(KINDS)})
#: The body of ``POST /api/v1/jobs/``: :data:`JOB_REQUEST` plus ``dry_run`` (:class:`JobRequestSerializer`).
JOB_CREATE_REQUEST = PolymorphicProxySerializer(
    component_name="JobSubmit", resource_type_field_name="kind",
    serializers={name: _kind_request(name, dry_run=True) for name in sorted(KINDS)})


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
    eta_seconds = serializers.FloatField(allow_null=True, help_text=(
        "seconds left (api.jobs.estimates.job_eta): the units not done of the current and later stages at the "
        "rate this job's finished units of each stage measured, else its estimate's, one worker slot per queue; "
        "0 once succeeded, null once failed or cancelled, or when a stage left has no rate"))


class PlanStageSerializer(serializers.Serializer):
    name = serializers.CharField()
    queue = serializers.CharField()
    units = serializers.IntegerField()


class StageEstimateSerializer(PlanStageSerializer):
    kind = serializers.CharField(help_text="the step it runs, named alike in every plan (timings are kept per kind)")
    work = serializers.FloatField(help_text="its amount of work, in work_unit")
    work_unit = serializers.ChoiceField(choices=["documents", "tokens", "units"], help_text=(
        "documents (of each shard, or of the corpus for a step over it), tokens (tiny-LM runs) or units (a step "
        "bounded by a sample)"))
    seconds_per_work = serializers.FloatField()
    seconds = serializers.FloatField()
    basis = serializers.ChoiceField(choices=["measured", "default", "calibration"], help_text=(
        "measured: the median over the deployment's most recent finished units of this kind (measured_units of "
        "them; tiny-LM pilots: the last run of this model config); default: the kind's documented default "
        "(curation.executor.DEFAULT_SECONDS), before any unit of it ran; calibration: tiny-LM pilots before any "
        "run of the config, a calibration run on the web host scaled by FLOPs"))
    measured_units = serializers.IntegerField()


class PilotRunEstimateSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    size = serializers.FloatField(help_text="documents")
    tokens = serializers.IntegerField()
    seconds = serializers.FloatField()
    purpose = serializers.CharField()


class EstimateSerializer(serializers.Serializer):
    """What a job will take (api/jobs/estimates.py); the tiny-LM fields only for jobs that train tiny LMs."""

    seconds = serializers.FloatField(help_text="the whole job: the sum of its stages'")
    worker_slots_per_queue = serializers.IntegerField(help_text=(
        "what the figures assume: a stage's units one after another; a queue with N worker processes finishes "
        "a stage of many units up to N times sooner"))
    stages = StageEstimateSerializer(many=True)
    runs = serializers.IntegerField(required=False, help_text="tiny-LM pilots: runs")
    parameters = serializers.IntegerField(required=False, help_text="tiny-LM pilots: parameters of the model")
    tokens = serializers.IntegerField(required=False, help_text="tiny-LM pilots: tokens of all runs")
    tokens_per_second = serializers.FloatField(required=False, help_text="tiny-LM pilots: training throughput")
    device = serializers.CharField(required=False, help_text="tiny-LM pilots: where the throughput was measured")
    throughput_source = serializers.CharField(required=False)
    per_run = PilotRunEstimateSerializer(many=True, required=False)


class JobDryRunSerializer(serializers.Serializer):
    """The answer to a dry run: the job that would be created, as its plan and estimate."""

    dry_run = serializers.BooleanField()
    kind = serializers.CharField()
    params = serializers.DictField(help_text="the params as the job would store them (normalised)")
    plan = PlanStageSerializer(many=True)
    estimate = EstimateSerializer()


class UnitWorkSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="work done inside the units that report it (tiny-LM pilots: tokens)")
    total = serializers.IntegerField()
    units = serializers.IntegerField(help_text="units that reported work")


class StageProgressSerializer(PlanStageSerializer):
    units_done = serializers.IntegerField()
    work = UnitWorkSerializer(allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    """A job; ``progress`` counts units over all stages, ``stages`` breaks it down per stage."""

    progress = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    stages = serializers.SerializerMethodField()
    estimate = serializers.SerializerMethodField()

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
                "elapsed_seconds": elapsed, "eta_seconds": job_eta(job=job)}

    @extend_schema_field(EstimateSerializer(allow_null=True))
    def get_estimate(self, job: Job) -> dict | None:
        """The estimate made at creation, the same a dry run of the request answered."""
        return job.estimate
