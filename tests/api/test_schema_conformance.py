"""The API answers as its OpenAPI schema says, for requests the schema allows and forbids.

Schemathesis (4.x) generates requests for every operation of ``/api/v1/schema/``,
``EXAMPLES`` per operation in each mode (positive: what the schema allows; negative: what
it forbids), and sends them to the Django app in-process (WSGI) with tenant A's key, after
real objects were made (a fitted performance model, a mixture with its manifest, a corpus
with a prediction set, a benchmark, a job, a schedule), so that a path's ``{id}`` is one
of A's objects in about half the positive cases. Every built-in check runs: no 5xx,
documented status codes, content types, headers and bodies, requests the schema forbids
refused, requests it allows accepted, auth not ignored. Each case runs in a savepoint
rolled back after it, so every case sees the same objects (a DELETE does not take them
away from the next). Derandomized: the same cases every run.

Schema-valid requests may still be refused (400) where the API checks what a JSON Schema
cannot say (:data:`CONTENT_RULES`: a file's contents, rules across fields, weights summing
to 1); there every other check still holds, and the 400 must be that rule's.

Tenant isolation: every operation with an ``{id}`` is also sent tenant B's object ids
with A's key; each is a 404.
"""
from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.api.helpers import jsonl
from tests.api.test_modeling_api import fitted  # noqa: F401 - a fitted performance model and its mixture

EXAMPLES = 25

_UPLOAD = ("the file's contents (format, fields, encoding, compression)", None, {"file"})
_JOB_FIELDS = {"corpus", "budget", "model_parameters", "performance_model", "keep_fraction"}
_PILOT_FIELDS = {"pilot_model", "pilot_tokens", "tiny_lm", "benchmarks"}
_SCHEDULE = ("one of cron or interval_seconds, each cron field's syntax, the job template's rules",
             {"invalid_timing", "invalid_cron", "invalid_interval", "not_found", "not_enough_pilot_runs"}, _JOB_FIELDS)

#: Operations whose schema-valid requests may break a rule a JSON Schema cannot state:
#: operation -> (the rule, the error codes it answers with (None: any but validation_error),
#: the fields a validation_error may name). Any other 400 to a schema-valid request fails.
CONTENT_RULES = {
    "POST /api/v1/corpora/": _UPLOAD,
    "POST /api/v1/benchmarks/": _UPLOAD,
    "POST /api/v1/corpora/{id}/predictions/": ("the file's contents, and its ids are the corpus's", None, {"file"}),
    "POST /api/v1/jobs/": ("one of corpus or benchmark; a budget within its unit; a model or a corpus to fit; "
                           "metric or pilot_model; tiny-LM runs that hold a document and train 8 steps; heads "
                           "dividing width; batch_size x context; benchmarks with text",
                           {"not_found", "not_enough_pilot_runs"}, _JOB_FIELDS | _PILOT_FIELDS),
    "POST /api/v1/schedules/": _SCHEDULE,
    "PATCH /api/v1/schedules/{id}/": _SCHEDULE,
    "POST /api/v1/pilot-runs/": ("mixture weights summing to 1 over the corpus's pools", {"invalid_mixture"}, set()),
    "POST /api/v1/corpora/{id}/search/": ("exactly one of text and benchmark", None, {"text"}),
    "POST /api/v1/pilot-designs/": ("exactly one of corpus and performance_model; over a corpus at least two "
                                    "different sizes and one more run than sizes", None, {"corpus", "sizes", "runs"}),
    "POST /api/v1/predictions/": ("mixture weights summing to 1 over the model's pools; a budget within its unit",
                                  {"invalid_prediction_request"}, {"budget"}),
}


def _content_rule_broken(label: str, error: dict) -> bool:
    """Whether a 400 to a schema-valid request of ``label`` is one of its :data:`CONTENT_RULES`."""
    _, codes, fields = CONTENT_RULES[label]
    if error["code"] == "validation_error":
        named = set(error["detail"].get("fields", {}))
        return bool(named) and named <= fields
    return codes is None or error["code"] in codes


@pytest.fixture
def ours(client_a, tenant_a, fitted) -> dict[str, str]:  # noqa: F811 - the fixture imported above
    """Ids of one object of each kind of tenant A, by the first segment of the paths they appear in."""
    return _objects(client_a, tenant_a[0], fitted)


@pytest.fixture
def theirs(client_b, tenant_b, dispatched) -> dict[str, str]:
    """The same for tenant B (a mixture job run inline for the model and the mixture)."""
    from curation.demo_data import demo_benchmark, demo_corpus
    from tests.api.helpers import upload
    from tests.api.test_jobs import run_inline

    corpus = upload(client_b, "corpora", "demo.jsonl", jsonl(demo_corpus(120)), shard_size=60).json()
    bench = upload(client_b, "benchmarks", "b.jsonl", jsonl(demo_benchmark(20))).json()
    job = client_b.post("/api/v1/jobs/", {"kind": "mixture", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing", "budget": 50,
        "ot_sample_size": 30}}, format="json").json()
    return _objects(client_b, tenant_b[0], (corpus, run_inline(job["id"]).result))


def _objects(client, tenant, fitted_result) -> dict[str, str]:
    from api.jobs import services as job_services
    from api.schedules.services import schedule_create

    corpus, result = fitted_result
    predictions = jsonl([{"id": f"doc-{i:05d}", "label": i % 2, "probs": [0.3, 0.7]} for i in range(100)])
    created = client.post(f"/api/v1/corpora/{corpus['id']}/predictions/",
                          {"file": SimpleUploadedFile("p.jsonl", predictions)}, format="multipart")
    assert created.status_code == 201, created.content
    embed = {"corpus": corpus["id"], "embedder": "hashing"}
    job = job_services.job_create(tenant=tenant, kind="embed", params=embed)
    schedule = schedule_create(tenant=tenant, cron="0 3 * * *", job_kind="embed", job_params=embed)
    return {"corpora": corpus["id"], "benchmarks": client.get("/api/v1/benchmarks/").json()["results"][0]["id"],
            "jobs": str(job.pk), "schedules": str(schedule.pk),
            "performance-models": result["performance_model"], "mixtures": result["mixture"]}


@pytest.fixture
def wsgi_app(ours, theirs, settings, caplog):
    """The app as a server runs it, unthrottled, keeping the test's transaction open across
    requests (as Django's test client does around each of its own: a request's end closes
    the connection). Made after the objects: the test client connects the signals again."""
    from django.core import signals
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    from api.tenancy.authentication import ApiKeyRateThrottle

    settings.API_KEY_MAX_FAILURES_PER_ADDRESS = 0  # schemathesis sends wrong keys on purpose (ignored_auth)
    settings.API_KEY_MAX_FAILURES_PER_KEY = 0
    caplog.set_level("ERROR", logger="django.request")  # thousands of 4xx lines otherwise
    rates = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = {**rates, "api_key": "1000000/min"}
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
    ApiKeyRateThrottle.THROTTLE_RATES = rates


def _summary(exc: BaseException) -> str:
    """One line per failure: the checks that failed, the answer's status and error code, the request."""
    text = str(exc)
    titles = re.findall(r"^- (ST\d+ [^\n]+)", text, re.M) or [f"{type(exc).__name__}: {text[:200]}"]
    status = re.search(r"^\[(\d{3})\]", text, re.M)
    code = re.search(r'"code":"([^"]+)"', text)
    curl = re.search(r"^ +(curl .+)$", text, re.M)
    return (f"{'; '.join(titles)} -> {status.group(1) if status else '?'} {code.group(1) if code else ''}"
            f" | {curl.group(1)[:300] if curl else ''}")


def _config(secret: str):
    from schemathesis.config import SchemathesisConfig

    allowed = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]  # 5xx: not_a_server_error fails
    return SchemathesisConfig.from_dict({
        "auth": {"openapi": {"ApiKey": {"bearer": secret}}},
        "operations": [{"include-name": name, "checks": {"positive_data_acceptance": {"expected-statuses": allowed}}}
                       for name in CONTENT_RULES],
    })


def test_every_operation_answers_as_documented(wsgi_app, ours, theirs, tenant_a):
    import schemathesis
    from django.db import transaction
    from hypothesis import HealthCheck, given, settings, strategies as st
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", wsgi_app, config=_config(tenant_a[1]))
    failures: dict[str, list[str]] = {}
    cases = {"all": 0, "isolation": 0}

    def run(operation, mode, strategy):
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), phases=["explicit", "generate"])
        @given(case=strategy)
        def send(case):
            cases["all"] += 1
            with transaction.atomic():
                try:
                    response = case.call_and_validate()
                    if case.path_parameters and case.path_parameters.get("id") in theirs.values():
                        cases["isolation"] += 1
                        assert response.status_code == 404, f"another tenant's {case.path_parameters['id']}: " \
                                                            f"{response.status_code} {response.text[:200]}"
                    if (mode is GenerationMode.POSITIVE and response.status_code == 400
                            and operation.label in CONTENT_RULES):
                        assert _content_rule_broken(operation.label, response.json()["error"]), \
                            f"a schema-valid request refused: {response.text[:300]}"
                except (FailureGroup, Exception) as exc:  # noqa: BLE001 - every failure is reported below
                    failures.setdefault(f"{operation.label} [{mode.value}]", []).append(_summary(exc))
                transaction.set_rollback(True)

        send()

    for result in schema.get_all_operations():
        operation = result.ok()
        segment = operation.path.split("/")[3]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            if "{id}" in operation.path and mode is GenerationMode.POSITIVE:
                strategy = st.one_of(strategy, *(operation.as_strategy(generation_mode=mode,
                                                                       path_parameters={"id": ids[segment]})
                                                 for ids in (ours, theirs)))
            run(operation, mode, strategy)

    print(f"schemathesis: {cases['all']} cases, {cases['isolation']} with another tenant's ids")
    report = "\n".join(f"== {label}: {len(lines)}\n  " + "\n  ".join(sorted(set(lines)))
                       for label, lines in failures.items())
    assert not failures, f"{sum(map(len, failures.values()))} failures in {len(failures)} operations\n{report}"
    assert cases["all"] >= 1000 and cases["isolation"] >= 50, cases
