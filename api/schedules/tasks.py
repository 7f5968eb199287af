"""The task beat sends for every schedule: ids in, one service call."""
from api.schedules import services
from workers.celery import app


@app.task(name=services.FIRE_TASK, ignore_result=True)
def fire_schedule(schedule_id: str) -> str:
    return services.schedule_fire(schedule_id=schedule_id)
