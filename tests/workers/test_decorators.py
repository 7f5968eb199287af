"""The task decorator's failure path: a transient error (the database unreachable) retries
the unit and records no failure; a failure that cannot be recorded requeues the message
instead of letting it be acknowledged."""
from __future__ import annotations

import pytest
from celery.exceptions import Reject
from django.db import OperationalError

from api.jobs import services as job_services
from workers import decorators
from workers.tasks import run_job_unit


def _failing(error: Exception, calls: list, times: int | None = None):
    def run(**kwargs):
        calls.append(kwargs)
        if times is None or len(calls) <= times:
            raise error
        return "done"

    return run


def test_transient_errors_retry_the_unit_with_backoff_and_record_no_failure(monkeypatch):
    calls, failures = [], []
    monkeypatch.setattr(job_services, "job_run_unit", _failing(OperationalError("connection refused"), calls, 2))
    monkeypatch.setattr(job_services, "job_fail", lambda **kwargs: failures.append(kwargs))
    result = run_job_unit.apply(args=("a-job", "embedding", 3))
    assert result.get() == "done"
    assert len(calls) == 3 and failures == []
    assert [decorators.retry_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_transient_error_past_the_last_retry_is_recorded_as_the_failure(monkeypatch, settings):
    settings.JOB_UNIT_RETRIES = 0
    failures = []
    monkeypatch.setattr(job_services, "job_run_unit", _failing(OperationalError("connection refused"), []))
    monkeypatch.setattr(job_services, "job_fail", lambda **kwargs: failures.append(kwargs))
    assert run_job_unit.run("a-job", "embedding", 3) == "failed"
    assert failures == [{"job_id": "a-job", "reason": "jobs.run_unit ('embedding', 3): OperationalError after 0 "
                                                      "retries: connection refused"}]


def test_a_failure_that_cannot_be_recorded_requeues_the_message(monkeypatch):
    attempts: list = []
    monkeypatch.setattr(job_services, "job_run_unit", _failing(ValueError("a bad shard"), []))
    monkeypatch.setattr(job_services, "job_fail", _failing(OperationalError("connection refused"), attempts))
    monkeypatch.setattr(decorators.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(decorators, "close_old_connections", lambda: None)  # no database in this test
    with pytest.raises(Reject) as rejected:
        run_job_unit.run("a-job", "embedding", 3)
    assert rejected.value.requeue is True
    assert len(attempts) == decorators.FAILURE_RECORD_ATTEMPTS
