"""Thin tasks: ids in, one service call."""
from api.jobs import services
from workers.decorators import job_task


@job_task("jobs.run_shard")
def run_job_shard(job_id: str, index: int) -> str:
    return services.job_run_shard(job_id=job_id, index=index)


@job_task("jobs.finalize")
def finalize_job(job_id: str) -> str:
    return services.job_finalize(job_id=job_id)
