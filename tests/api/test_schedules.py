"""Schedules API: validation (timing, and the job template exactly as POST /jobs/),
the beat PeriodicTask kept in step, next run, pause, delete, and what one firing does
(create a job, skip while the last one is going, record failures)."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from api.jobs import services as job_services
from api.jobs.models import Job
from api.schedules.models import Schedule, ScheduleFiring
from api.schedules.services import schedule_fire
from tests.api.helpers import error_of, small_corpus, upload


@pytest.fixture(autouse=True)
def short_intervals(settings):
    settings.SCHEDULE_MIN_INTERVAL_SECONDS = 5


@pytest.fixture
def corpus(client_a):
    return upload(client_a, "corpora", "c.jsonl", small_corpus(8), shard_size=4).json()


def _embed(corpus_id: str) -> dict:
    return {"kind": "embed", "params": {"corpus": corpus_id, "embedder": "hashing"}}


def _create(client, **body):
    return client.post("/api/v1/schedules/", body, format="json")


def test_interval_schedule_round_trip_and_periodic_task(client_a, corpus):
    response = _create(client_a, name="nightly", interval_seconds=60, job_template=_embed(corpus["id"]))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "nightly" and body["interval_seconds"] == 60 and body["cron"] == ""
    assert body["enabled"] is True and body["last_fired_at"] is None and body["last_job"] is None
    assert body["job_template"] == {"kind": "embed", "params": {"corpus": corpus["id"], "embedder": "hashing"}}
    assert body["firings"] == {"jobs_created": 0, "skipped": 0, "failed": 0}
    next_run = dt.datetime.fromisoformat(body["next_run_at"])
    assert 50 <= (next_run - timezone.now()).total_seconds() <= 61

    task = PeriodicTask.objects.get(name=f"schedule {body['id']}")
    assert task.task == "schedules.fire" and task.enabled and task.queue == "cpu"
    assert task.args == f'["{body["id"]}"]' and task.interval.every == 60 and task.crontab is None
    assert client_a.get(f"/api/v1/schedules/{body['id']}/").json()["id"] == body["id"]
    assert [s["id"] for s in client_a.get("/api/v1/schedules/").json()["results"]] == [body["id"]]


def test_cron_schedule_next_run_and_crontab_row(client_a, corpus):
    body = _create(client_a, cron="  30  4 * *   1-5 ", job_template=_embed(corpus["id"])).json()
    assert body["cron"] == "30 4 * * 1-5" and body["interval_seconds"] is None
    next_run = dt.datetime.fromisoformat(body["next_run_at"])
    assert (next_run.hour, next_run.minute, next_run.second) == (4, 30, 0) and next_run.weekday() < 5
    assert dt.timedelta(0) < next_run - timezone.now() <= dt.timedelta(days=3, minutes=1)
    crontab = PeriodicTask.objects.get(name=f"schedule {body['id']}").crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == ("30", "4", "1-5", "UTC")


@pytest.mark.parametrize("timing,code,words", [
    ({"cron": "* * *"}, "invalid_cron", "5 fields"),
    ({"cron": "61 * * * *"}, "invalid_cron", "minute '61'"),
    ({"cron": "0 3 * * funday"}, "invalid_cron", "day-of-week"),
    ({}, "invalid_timing", "exactly one of cron"),
    ({"cron": "0 3 * * *", "interval_seconds": 60}, "invalid_timing", "exactly one of cron"),
    ({"interval_seconds": 2}, "invalid_interval", "between 5 and"),
])
def test_bad_timing_is_a_400_naming_the_problem(client_a, corpus, timing, code, words):
    response = _create(client_a, job_template=_embed(corpus["id"]), **timing)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == code and words in error["message"], error
    assert not Schedule.unscoped_objects.exists() and not PeriodicTask.objects.exists()


@pytest.mark.parametrize("template", [
    {"kind": "nonsense", "params": {}},
    {"kind": "embed", "params": {}},
    {"kind": "embed", "params": {"corpus": "CORPUS", "embedder": "st:/etc"}},
    {"kind": "embed", "params": {"corpus": "00000000-0000-0000-0000-000000000000"}},
    {"params": {}},
])
def test_job_template_is_validated_exactly_like_post_jobs(client_a, corpus, template, dispatched):
    template = {**template, "params": {k: v.replace("CORPUS", corpus["id"]) for k, v in template["params"].items()}}
    job_response = client_a.post("/api/v1/jobs/", template, format="json")
    response = _create(client_a, interval_seconds=60, job_template=template)
    assert response.status_code == job_response.status_code and response.status_code in (400, 404)
    if "kind" in template:
        assert response.json() == job_response.json()
    else:  # the missing field is named inside the template
        assert error_of(response)["code"] == "validation_error" and "kind" in error_of(response)["message"]
    assert not Schedule.unscoped_objects.exists() and not Job.unscoped_objects.exists()


def test_another_tenants_corpus_in_a_template_is_404(client_b, corpus):
    response = _create(client_b, interval_seconds=60, job_template=_embed(corpus["id"]))
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_patch_pauses_resumes_and_switches_timing(client_a, corpus):
    schedule_id = _create(client_a, interval_seconds=30, job_template=_embed(corpus["id"])).json()["id"]
    url = f"/api/v1/schedules/{schedule_id}/"

    paused = client_a.patch(url, {"enabled": False}, format="json").json()
    assert paused["enabled"] is False and paused["next_run_at"] is None
    assert PeriodicTask.objects.get(name=f"schedule {schedule_id}").enabled is False
    assert client_a.get("/api/v1/schedules/?enabled=false").json()["results"][0]["id"] == schedule_id
    assert client_a.get("/api/v1/schedules/?enabled=true").json()["results"] == []

    switched = client_a.patch(url, {"cron": "0 3 * * *", "enabled": True, "name": "renamed"}, format="json").json()
    assert (switched["cron"], switched["interval_seconds"], switched["name"]) == ("0 3 * * *", None, "renamed")
    task = PeriodicTask.objects.get(name=f"schedule {schedule_id}")
    assert task.enabled and task.crontab.hour == "3" and task.interval is None
    assert not IntervalSchedule.objects.exists(), "the unused interval row is removed"

    back = client_a.patch(url, {"interval_seconds": 45}, format="json").json()
    assert (back["cron"], back["interval_seconds"]) == ("", 45)
    assert not CrontabSchedule.objects.exists()

    bad = client_a.patch(url, {"job_template": {"kind": "embed", "params": {"embedder": "hashing"}}}, format="json")
    assert bad.status_code == 400 and error_of(bad)["code"] == "validation_error"
    assert client_a.get(url).json()["job_template"]["params"]["corpus"] == corpus["id"], "unchanged after a 400"
    assert client_a.put(url, {}, format="json").status_code == 405


def test_delete_removes_the_beat_entry(client_a, corpus):
    schedule_id = _create(client_a, interval_seconds=30, job_template=_embed(corpus["id"])).json()["id"]
    assert client_a.delete(f"/api/v1/schedules/{schedule_id}/").status_code == 204
    assert client_a.get(f"/api/v1/schedules/{schedule_id}/").status_code == 404
    assert not PeriodicTask.objects.exists() and not IntervalSchedule.objects.exists()


def test_firing_creates_a_job_skips_while_it_runs_and_records_failures(client_a, tenant_a, corpus, dispatched,
                                                                        django_capture_on_commit_callbacks):
    schedule_id = _create(client_a, interval_seconds=30, job_template=_embed(corpus["id"])).json()["id"]

    with django_capture_on_commit_callbacks(execute=True):
        assert schedule_fire(schedule_id=schedule_id).startswith("created job")
    job = Job.unscoped_objects.get()
    assert job.tenant_id == tenant_a[0].pk and job.params == {"corpus": corpus["id"], "embedder": "hashing"}
    assert dispatched and dispatched[-1]["job_id"] == str(job.pk)

    assert schedule_fire(schedule_id=schedule_id) == f"skipped: job {job.pk} is still queued"
    assert Job.unscoped_objects.count() == 1

    job_services.job_fail(job_id=job.pk, reason="test")
    assert schedule_fire(schedule_id=schedule_id).startswith("created job")
    assert Job.unscoped_objects.count() == 2
    second = Job.unscoped_objects.order_by("-created_at").first()

    client_a.patch(f"/api/v1/schedules/{schedule_id}/", {"enabled": False}, format="json")
    job_services.job_cancel(job=second)
    assert schedule_fire(schedule_id=schedule_id) == "skipped: paused"
    client_a.patch(f"/api/v1/schedules/{schedule_id}/", {"enabled": True}, format="json")

    client_a.delete(f"/api/v1/corpora/{corpus['id']}/")
    assert schedule_fire(schedule_id=schedule_id) == "failed: not_found"
    assert Job.unscoped_objects.count() == 2

    body = client_a.get(f"/api/v1/schedules/{schedule_id}/").json()
    assert body["firings"] == {"jobs_created": 2, "skipped": 2, "failed": 1}
    assert body["last_job"] == {"id": str(second.pk), "status": "cancelled"}
    assert body["last_fired_at"] is not None
    firings = client_a.get(f"/api/v1/schedules/{schedule_id}/firings/").json()
    assert [f["outcome"] for f in firings] == ["failed", "skipped", "created", "skipped", "created"]
    assert "no corpus with id" in firings[0]["reason"] and "still queued" in firings[3]["reason"]
    assert ScheduleFiring.unscoped_objects.filter(tenant=tenant_a[0]).count() == 5


def test_fire_of_a_deleted_schedule_does_nothing(client_a, corpus):
    schedule_id = _create(client_a, interval_seconds=30, job_template=_embed(corpus["id"])).json()["id"]
    client_a.delete(f"/api/v1/schedules/{schedule_id}/")
    assert schedule_fire(schedule_id=schedule_id) == "skipped: the schedule is gone"
    assert not Job.unscoped_objects.exists()


def test_schedules_are_in_the_openapi_schema(client):
    text = client.get("/api/v1/schema/").content.decode()
    assert "/api/v1/schedules/{id}/" in text and "job_template" in text
