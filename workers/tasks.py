"""Thin tasks: ids in, one service call."""
from api.jobs import services as job_services
from api.jobs.dispatch import RUN_UNIT
from api.schedules import services as schedule_services
from workers.decorators import task


def _fail_job(job_id: str, reason: str) -> None:
    job_services.job_fail(job_id=job_id, reason=reason)


@task(RUN_UNIT, subject="job", on_failure=_fail_job)
def run_job_unit(job_id: str, stage: str, index: int) -> str:
    return job_services.job_run_unit(job_id=job_id, stage=stage, index=index)


@task(schedule_services.FIRE_TASK, subject="schedule")
def fire_schedule(schedule_id: str) -> str:
    return schedule_services.schedule_fire(schedule_id=schedule_id)
