"""Thin tasks: ids in, one service call."""
from api.jobs import services
from workers.decorators import job_task


@job_task("jobs.run_unit")
def run_job_unit(job_id: str, stage: str, index: int) -> str:
    return services.job_run_unit(job_id=job_id, stage=stage, index=index)
