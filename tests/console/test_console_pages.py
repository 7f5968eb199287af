"""Console pages with Django's test client: login, every page renders the tenant's real
data, forms write through the API's services with the API's error messages, and
tenant isolation over every console URL (another tenant's object is a 404 page)."""
from __future__ import annotations

import re
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, reverse
from django_celery_beat.models import PeriodicTask

from api.console import access as console_access
from api.console import urls as console_urls
from api.console.views import PostOnlyView
from api.datasets import services as dataset_services
from api.datasets.models import Dataset
from api.jobs.models import Job
from api.schedules.models import Schedule
from api.tenancy.models import ApiKey
from curation.ingest import FieldMapping
from curation.laws import Observation
from curation.laws.backtest import select_law
from curation.laws.base import pool_of_row
from tests.api.helpers import files_under, upload
from tests.console.conftest import PASSWORD, fill_tenant, observe_mixtures


@pytest.fixture
def data_a(tenant_a, dispatched):
    return fill_tenant(tenant_a[0])


@pytest.fixture
def user_a(make_user, tenant_a):
    return make_user("alice", tenant_a[0])


@pytest.fixture
def user_b(make_user, tenant_b):
    return make_user("bob", tenant_b[0])


def _login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _page(client, path: str, status: int = 200):
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.content[:500])
    return response.content.decode()


def test_anonymous_users_are_sent_to_the_login_page(client, tenant_a):
    for path in ("/console/", f"/console/{tenant_a[0].pk}/", f"/console/{tenant_a[0].pk}/jobs/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/console/login/?next="), path
    assert "Log in" in _page(client, "/console/login/")


def test_login_form_then_a_single_tenant_opens_directly(client, user_a, tenant_a):
    response = client.post("/console/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/console/"
    response = client.get("/console/")
    assert response.status_code == 302 and response["Location"] == f"/console/{tenant_a[0].pk}/"
    bad = client.post("/console/logout/")
    assert bad.status_code == 302
    assert client.post("/console/login/", {"username": "alice", "password": "wrong"}).status_code == 200


def test_every_page_shows_the_tenants_data(client, user_a, tenant_a, data_a):
    _login(client, user_a)
    t = tenant_a[0].pk
    corpus, mixture, model = data_a["corpus"], data_a["mixture"], data_a["performance_model"]

    overview = _page(client, f"/console/{t}/")
    assert "Stored bytes" in overview and "Concurrent jobs" in overview and "<meter" in overview
    assert str(mixture.pk)[:8] in overview and "nightly re-embed" in overview

    corpora = _page(client, f"/console/{t}/corpora/")
    assert "demo_corpus.jsonl" in corpora and "demo_benchmark" not in corpora
    detail = _page(client, f"/console/{t}/corpora/{corpus.pk}/")
    assert 'role="img"' in detail and "Documents per source" in detail and "prototypes scores" in detail
    assert "pruned_easy" in detail and detail.count("<rect") > 20, "source bars and histogram bins"
    for source, count in corpus.source_counts.items():
        assert f"<td>{source}</td><td>{count:,}</td>" in detail, source
    assert "shard" in detail.lower() and f"{corpus.shard_count}</p>" in detail
    assert "demo_benchmark.jsonl" in _page(client, f"/console/{t}/benchmarks/")
    assert _page(client, f"/console/{t}/benchmarks/{data_a['benchmark'].pk}/").count("<svg") == 1

    jobs = _page(client, f"/console/{t}/jobs/")
    assert "embed" in jobs and "prune" in jobs
    assert "prune" not in _page(client, f"/console/{t}/jobs/?kind=embed").split("<tbody>")[1]
    job_page = _page(client, f"/console/{t}/jobs/{data_a['job'].pk}/")
    assert 'role="progressbar"' in job_page and "data-progress-url" in job_page and "Cancel" in job_page

    mixtures = _page(client, f"/console/{t}/mixtures/")
    assert str(mixture.pk)[:8] in mixtures
    mixture_page = _page(client, f"/console/{t}/mixtures/{mixture.pk}/")
    assert "Weight per pool" in mixture_page and "Predicted accuracy against budget" in mixture_page
    assert "<polygon" in mixture_page, "the frontier's uncertainty band"
    assert "Manifest (jsonl)" in mixture_page
    for pool in mixture.pools:
        assert pool["pool"] in mixture_page

    models = _page(client, f"/console/{t}/models/")
    assert str(model.pk)[:8] in models and "accuracy" in models
    model_page = _page(client, f"/console/{t}/models/{model.pk}/")
    assert "Observations against the fitted curve" in model_page and "0.0041" in model_page
    assert "<polyline" in model_page and "<circle" in model_page
    assert "<polyline" in _page(client, f"/console/{t}/pilot-runs/?corpus={corpus.pk}&metric=accuracy")

    schedules = _page(client, f"/console/{t}/schedules/")
    assert "nightly re-embed" in schedules and "cron 0 3 * * *" in schedules and "03:00:00 UTC" in schedules
    assert "03:00:00 UTC" in _page(client, f"/console/{t}/schedules/{data_a['schedule'].pk}/")
    assert "cur_" in _page(client, f"/console/{t}/keys/")


def test_corpus_page_names_the_fields_the_documents_were_read_from(client, user_a, tenant_a, data_a):
    _login(client, user_a)
    t = tenant_a[0].pk
    # The demo corpus has ids and sources under the default names: the page names them, not null.
    detail = _page(client, f"/console/{t}/corpora/{data_a['corpus'].pk}/")
    fields = re.search(r"<ul class=\"plain\" data-fields-read>(.*?)</ul>", detail, re.S).group(1)
    assert "null" not in fields and "None" not in fields
    assert re.findall(r"<li>(\w+): <code>(\w+)</code> <span class=\"muted\">\(([^)]*)\)", fields) == [
        ("id", "id", "default"), ("source", "source", "default")]
    assert "<li>text: <code>text</code></li>" in fields
    noids = dataset_services.dataset_create(
        tenant=tenant_a[0], kind="corpus", name="noids.jsonl", mapping=FieldMapping(text_field="body"),
        upload=SimpleUploadedFile("noids.jsonl", b'{"body": "a"}\n{"body": "b"}\n'))
    fields = _page(client, f"/console/{t}/corpora/{noids.pk}/").split("data-fields-read>")[1].split("</ul>")[0]
    assert "<li>text: <code>body</code></li>" in fields
    assert "id: <span class=\"muted\">(not in the file: ids generated" in fields
    assert "source: <span class=\"muted\">(not in the file: documents have no source)" in fields


def test_mixture_page_says_what_repetitions_count_and_the_bands_level(client, user_a, tenant_a, data_a):
    _login(client, user_a)
    t = tenant_a[0].pk
    # Repetitions below 1 say how many of the pool's documents are used; the band says its level.
    mixture = data_a["mixture"]
    page = _page(client, f"/console/{t}/mixtures/{mixture.pk}/")
    for pool in mixture.pools:
        used = f"{pool['unique_documents']:,} / {pool['available_documents']:,} unique used"
        assert f"{pool['repetitions']:.2f}× <tspan class=\"note\">{used}</tspan>" in page, pool
    note = re.search(r"<p class=\"muted\" data-predicted-note>(.*?)</p>", page).group(1)
    assert note.startswith("higher is better; 95% band ") and " – " in note, note


def _panels(page: str) -> list[str]:
    """The mixture names of the observation panels on a page, in order."""
    return re.findall(r'<figure class="panel"><figcaption class="panel-title">([^<]*)</figcaption>', page)


def test_observations_chart_draws_every_mixture_with_its_full_name(client, user_a, tenant_a, data_a):
    _login(client, user_a)
    t, model = tenant_a[0].pk, data_a["performance_model"]
    labels = observe_mixtures(tenant_a[0], data_a, 17)
    page = _page(client, f"/console/{t}/models/{model.pk}/")
    assert _panels(page) == sorted(labels), "one panel per mixture, titled with the whole mixture"
    assert max(len(label) for label in labels) > 60, "names longer than a legend used to show"
    assert "All 17 mixtures, one panel each." in page
    chart = page.split('<figure class="chart-figure multiples">')[1].split("</figure>\n  <figcaption>")[0]
    assert chart.count("<circle") == 17 * 3 + 1 and chart.count("<polyline") == 17, "points, one key, curves"
    assert "…" not in chart

    pilots = _page(client, f"/console/{t}/pilot-runs/")
    assert _panels(pilots) == sorted(labels) and "All 17 mixtures" in pilots


def test_observations_chart_pages_through_many_mixtures_and_says_what_is_not_drawn(client, user_a, tenant_a,
                                                                                   data_a):
    _login(client, user_a)
    t, model = tenant_a[0].pk, data_a["performance_model"]
    labels = observe_mixtures(tenant_a[0], data_a, 30)
    model.observations = [*model.observations, {**model.observations[0], "value": None},
                          {**model.observations[1], "size": 0}]
    model.save(update_fields=["observations"])
    url = f"/console/{t}/models/{model.pk}/"
    first = _page(client, url)
    assert len(_panels(first)) == 24 and "Mixtures 1–24 of 30, one panel each" in first
    assert '<a href="?panels=2" rel="next">next →</a>' in first and 'rel="prev"' not in first
    assert "2 observations without a finite value or a positive size are not drawn" in first
    second = _page(client, url + "?panels=2")
    assert "Mixtures 25–30 of 30" in second and '<a href="?panels=1" rel="prev">' in second
    assert _panels(first) + _panels(second) == sorted(labels), "every mixture on one of the pages"
    assert _panels(_page(client, url + "?panels=nope")) == _panels(first)

    pilots = _page(client, f"/console/{t}/pilot-runs/")
    link = re.search(r'<a href="([^"]*)" rel="next">', pilots).group(1).replace("&amp;", "&")
    assert f"corpus={data_a['corpus'].pk}" in link and "metric=accuracy" in link and "panels=2" in link
    assert len(_panels(_page(client, f"/console/{t}/pilot-runs/{link}"))) == 6


def test_progress_json_is_the_api_job_document_plus_units(client, user_a, tenant_a, data_a, client_a):
    _login(client, user_a)
    job = data_a["job"]
    body = client.get(f"/console/{tenant_a[0].pk}/jobs/{job.pk}/progress.json").json()
    api = client_a.get(f"/api/v1/jobs/{job.pk}/").json()
    assert {k: body[k] for k in api if k != "timings"} == {k: v for k, v in api.items() if k != "timings"}
    assert body["active"] is True
    assert [u["name"] for u in body["units"]] == ["embedding", "summary"]
    assert body["units"][0]["grid"] == [False] * data_a["corpus"].shard_count


def test_upload_form_stores_a_corpus_and_shows_the_apis_errors(client, user_a, tenant_a, client_a, artifact_root):
    _login(client, user_a)
    url = f"/console/{tenant_a[0].pk}/corpora/upload/"
    good = b'{"id": "a", "text": "hello", "source": "web"}\n{"id": "b", "text": "world", "source": "news"}\n'
    response = client.post(url, {"file": SimpleUploadedFile("mine.jsonl", good), "shard_size": "1", "name": ""})
    dataset = Dataset.objects.for_tenant(tenant_a[0]).get(name="mine.jsonl")
    assert response.status_code == 302 and response["Location"].endswith(f"/corpora/{dataset.pk}/")
    assert dataset.shard_count == 2 and dataset.source_counts == {"web": 1, "news": 1}

    before = files_under(artifact_root)
    for filename, content, extra in (("bad.jsonl", b'{"id": "a", "text": "ok"}\n{"id": "b"}\n', {}),
                                     ("dup.jsonl", b'{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', {}),
                                     ("x.jsonl", b'{"id": "a", "text": "x"}\n', {"shard_size": "0"})):
        api = upload(client_a, "corpora", filename, content, **extra).json()["error"]
        page = client.post(url, {"file": SimpleUploadedFile(filename, content), **extra})
        assert page.status_code == 400
        text = page.content.decode()
        assert f"<strong>{api['code']}</strong>" in text, text[:2000]
        shown = re.search(r"data-error-message>(.*?)</span>", text, re.S).group(1)
        assert shown == api["message"].replace("'", "&#x27;").replace('"', "&quot;"), (shown, api["message"])
    assert files_under(artifact_root) == before, "a rejected upload leaves nothing behind"
    assert "No file was submitted" in client.post(url, {}).content.decode()


def test_job_form_starts_jobs_and_shows_the_apis_errors(client, user_a, tenant_a, data_a, client_a, dispatched):
    _login(client, user_a)
    url = f"/console/{tenant_a[0].pk}/jobs/new/"
    corpus = str(data_a["corpus"].pk)
    prefilled = _page(client, f"{url}?kind=embed&corpus={corpus}&embedder=hashing")
    assert f"&quot;corpus&quot;: &quot;{corpus}&quot;" in prefilled and "&quot;hashing&quot;" in prefilled
    response = client.post(url, {"kind": "embed", "params": f'{{"corpus": "{corpus}", "embedder": "hashing"}}'})
    job = Job.objects.for_tenant(tenant_a[0]).order_by("-created_at").first()
    assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{job.pk}/")
    for kind, params in (("embed", {"embedder": "hashing"}), ("embed", {"corpus": str(uuid.uuid4())}),
                         ("nope", {})):
        api = client_a.post("/api/v1/jobs/", {"kind": kind, "params": params}, format="json").json()["error"]
        import json

        page = client.post(url, {"kind": kind, "params": json.dumps(params)}).content.decode()
        assert f"<strong>{api['code']}</strong>" in page
    assert "params is not valid JSON" in client.post(url, {"kind": "embed", "params": "{oops"}).content.decode()


def test_cancel_and_retry_buttons(client, user_a, tenant_a, data_a, dispatched):
    _login(client, user_a)
    job = data_a["job"]
    base = f"/console/{tenant_a[0].pk}/jobs/{job.pk}"
    assert client.get(f"{base}/cancel/").status_code == 405
    assert client.post(f"{base}/cancel/").status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"
    page = _page(client, f"{base}/")
    assert "Cancelled the job." in page
    client.post(f"{base}/retry/")
    job.refresh_from_db()
    assert job.status == "queued"
    client.post(f"{base}/retry/")
    assert "only failed or cancelled jobs can be retried" in _page(client, f"{base}/")


def test_schedule_pages_create_edit_pause_delete(client, user_a, tenant_a, data_a, settings):
    settings.SCHEDULE_MIN_INTERVAL_SECONDS = 60
    _login(client, user_a)
    base = f"/console/{tenant_a[0].pk}/schedules"
    corpus = str(data_a["corpus"].pk)
    form = {"name": "hourly", "timing": "interval", "interval_seconds": "3600", "cron": "0 3 * * *",
            "kind": "embed", "params": f'{{"corpus": "{corpus}", "embedder": "hashing"}}', "enabled": "on"}
    response = client.post(f"{base}/new/", form)
    schedule = Schedule.objects.for_tenant(tenant_a[0]).get(name="hourly")
    assert response.status_code == 302 and schedule.interval_seconds == 3600 and schedule.cron == ""
    page = _page(client, f"{base}/{schedule.pk}/")
    assert "every 3600 s" in page and "in 59 min" in page or "in 1 h" in page

    bad = client.post(f"{base}/new/", {**form, "timing": "cron", "cron": "61 * * * *"}).content.decode()
    assert "<strong>invalid_cron</strong>" in bad and "minute" in bad
    bad = client.post(f"{base}/new/", {**form, "interval_seconds": "5"}).content.decode()
    assert "<strong>invalid_interval</strong>" in bad

    client.post(f"{base}/{schedule.pk}/", {**form, "timing": "cron", "cron": "15 6 * * *", "name": "daily"})
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.interval_seconds, schedule.name) == ("15 6 * * *", None, "daily")
    assert "06:15:00 UTC" in _page(client, f"{base}/{schedule.pk}/")

    client.post(f"{base}/{schedule.pk}/toggle/")
    schedule.refresh_from_db()
    assert not schedule.enabled and not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    assert client.post(f"{base}/{schedule.pk}/delete/").status_code == 302
    assert not Schedule.objects.for_tenant(tenant_a[0]).filter(pk=schedule.pk).exists()


def test_api_key_secret_is_shown_once_and_revoke_works(client, user_a, tenant_a):
    _login(client, user_a)
    base = f"/console/{tenant_a[0].pk}/keys"
    page = client.post(f"{base}/new/", {"name": "notebook"})
    assert page["Cache-Control"] == "no-store"
    secret = re.search(r'<code id="secret">(cur_[^<]+)</code>', page.content.decode()).group(1)
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/usage/").json()["tenant"]["name"] == "tenant-a"
    listing = _page(client, f"{base}/")
    assert secret not in listing and "notebook" in listing
    key = ApiKey.objects.for_tenant(tenant_a[0]).get(name="notebook")
    client.post(f"{base}/{key.pk}/revoke/")
    assert api.get("/api/v1/usage/").status_code == 401
    assert "revoked" in _page(client, f"{base}/")


def test_staff_see_and_switch_between_all_tenants(client, make_user, tenant_a, tenant_b, data_a):
    staff = make_user("root", staff=True)
    _login(client, staff)
    picker = _page(client, "/console/")
    assert "tenant-a" in picker and "tenant-b" in picker
    response = client.get(f"/console/?tenant={tenant_b[0].pk}")
    assert response["Location"] == f"/console/{tenant_b[0].pk}/"
    assert "demo_corpus.jsonl" in _page(client, f"/console/{tenant_a[0].pk}/corpora/")
    switcher = _page(client, f"/console/{tenant_b[0].pk}/")
    assert switcher.count("<option") == 2


# --- isolation over every console URL ------------------------------------------------

def _tenant_patterns() -> list[URLPattern]:
    tenant = next(p for p in console_urls.urlpatterns if isinstance(p, URLResolver))
    return list(tenant.url_patterns)


def _path_for(name: str, tenant_id, objects: dict) -> str:
    args = {"datasets": ["corpora"], "dataset_upload": ["corpora"]}.get(name, [])
    if name in ("dataset", "dataset_delete"):
        args = ["corpora", objects["corpus"].pk]
    elif name.startswith("job") and name not in ("jobs", "job_new"):
        args = [objects["job"].pk]
    elif name.startswith("mixture") and name != "mixtures":
        args = [objects["mixture"].pk]
    elif name == "model":
        args = [objects["performance_model"].pk]
    elif name.startswith("schedule") and name not in ("schedules", "schedule_new"):
        args = [objects["schedule"].pk]
    elif name == "key_revoke":
        args = [objects["key"].pk]
    return reverse(f"console:{name}", args=[tenant_id, *args])


_OBJECT_FREE = {"overview", "datasets", "dataset_upload", "jobs", "job_new", "mixtures", "models", "pilot_runs",
                "schedules", "schedule_new", "keys", "key_new"}


def _snapshot(artifact_root):
    return (list(Job.unscoped_objects.order_by("pk").values_list("pk", "status", "params")),
            list(Dataset.unscoped_objects.order_by("pk").values_list("pk", "name")),
            list(Schedule.unscoped_objects.order_by("pk").values_list("pk", "enabled", "cron", "name")),
            list(ApiKey.unscoped_objects.order_by("pk").values_list("pk", "revoked_at")),
            files_under(artifact_root))


@pytest.fixture
def isolation_setup(tenant_a, tenant_b, data_a, user_b):
    objects = {**data_a, "key": ApiKey.objects.for_tenant(tenant_a[0]).get()}
    names = [p.name for p in _tenant_patterns()]
    return objects, names


def _methods(name: str) -> list[str]:
    view = next(p for p in _tenant_patterns() if p.name == name).callback.view_class
    if issubclass(view, PostOnlyView):
        return ["post"]  # its GET is a 405 for any id, so it tells nothing
    return [m for m in ("get", "post") if hasattr(view, m)]


def test_every_console_url_of_another_tenant_is_a_404(client, user_b, tenant_a, tenant_b, isolation_setup,
                                                      artifact_root):
    objects, names = isolation_setup
    _login(client, user_b)
    before = _snapshot(artifact_root)
    checked = set()
    for name in names:
        # A's tenant in the URL: every method is a 404 before any view code runs.
        paths = [(_path_for(name, tenant_a[0].pk, objects), ("get", "post"))]
        if name not in _OBJECT_FREE:  # B's own tenant in the URL, A's object id: each method the page has
            paths.append((_path_for(name, tenant_b[0].pk, objects), _methods(name)))
        for path, methods in paths:
            for method in methods:
                response = getattr(client, method)(path, {"name": "x", "kind": "embed", "params": "{}"})
                assert response.status_code == 404, (method, path, response.status_code)
                assert b"Not found" in response.content and b"tenant-a" not in response.content
        checked.add(name)
    assert checked == set(names), f"console URLs without an isolation check: {set(names) - checked}"
    assert _snapshot(artifact_root) == before
    assert client.get(f"/console/?tenant={tenant_a[0].pk}").status_code == 404
    assert client.get("/console/no/such/page/").status_code == 404


def test_pages_typed_without_a_tenant_open_in_the_current_tenant(client, user_a, user_b, tenant_a, tenant_b,
                                                                 isolation_setup):
    objects, names = isolation_setup
    a, b = tenant_a[0].pk, tenant_b[0].pk
    response = client.get("/console/jobs/?status=failed")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/jobs/%3Fstatus%3Dfailed"

    # A member of one tenant: every page of theirs, typed without the tenant, redirects to it.
    _login(client, user_a)
    typed = {name: _path_for(name, a, objects).removeprefix(f"/console/{a}/") for name in names if name != "overview"}
    typed["benchmarks"] = _path_for("dataset", a, {"corpus": objects["benchmark"]}).removeprefix(
        f"/console/{a}/").replace("corpora", "benchmarks")
    assert {path.split("/")[0] for path in typed.values()} == set(console_urls.SECTIONS), "every section redirects"
    for name, path in typed.items():
        response = client.get(f"/console/{path}")
        assert (response.status_code, response["Location"]) == (302, f"/console/{a}/{path}"), name
    assert client.get("/console/jobs?kind=embed")["Location"] == f"/console/{a}/jobs/?kind=embed"
    for path in ("/console/jobs/nope/", "/console/corpora/upload/extra/", "/console/no/such/page/"):
        assert client.get(path).status_code == 404, path
    assert client.post("/console/jobs/").status_code == 405

    # Another tenant's member is sent to their own tenant, where A's objects are not found,
    # even with A's id planted in their session.
    _login(client, user_b)
    session = client.session
    session[console_access.CURRENT_TENANT] = str(a)
    session.save()
    for name in ("dataset", "job", "mixture", "model", "schedule"):
        response = client.get(f"/console/{typed[name]}", follow=True)
        assert response.redirect_chain == [(f"/console/{b}/{typed[name]}", 302)], name
        assert response.status_code == 404 and b"tenant-a" not in response.content, name


def test_a_member_of_several_tenants_picks_one_then_typed_pages_open_in_the_last_one(client, make_user, tenant_a,
                                                                                       tenant_b):
    a, b = tenant_a[0].pk, tenant_b[0].pk
    _login(client, make_user("carol", tenant_a[0], tenant_b[0]))
    response = client.get("/console/mixtures/?corpus=x")
    assert response["Location"] == "/console/?next=mixtures%2F%3Fcorpus%3Dx"
    picker = _page(client, response["Location"])
    assert "<code>mixtures/?corpus=x</code>" in picker
    link = re.search(r'<a href="(\?tenant=%s[^"]*)">tenant-b</a>' % b, picker).group(1).replace("&amp;", "&")
    assert client.get("/console/" + link)["Location"] == f"/console/{b}/mixtures/?corpus=x"
    assert client.get(f"/console/?tenant={b}&next=https://evil.example/")["Location"] == f"/console/{b}/"

    _page(client, f"/console/{b}/")
    assert client.get("/console/keys/")["Location"] == f"/console/{b}/keys/"
    _page(client, f"/console/{a}/jobs/")
    assert client.get("/console/keys/")["Location"] == f"/console/{a}/keys/"


def test_owner_reaches_the_same_urls(client, user_a, tenant_a, isolation_setup):
    objects, names = isolation_setup
    _login(client, user_a)
    for name in names:
        if name in ("job_cancel", "job_retry", "schedule_toggle", "schedule_delete", "key_revoke", "key_new",
                    "dataset_delete"):
            assert client.get(_path_for(name, tenant_a[0].pk, objects)).status_code == 405, name
            continue
        if name == "mixture_manifest":
            continue  # streams once the mixture job wrote a manifest (tests/api)
        assert client.get(_path_for(name, tenant_a[0].pk, objects)).status_code == 200, name


def test_manifest_downloads_as_jsonl_and_parquet(client, user_a, tenant_a, data_a):
    pytest.importorskip("curation.manifest")
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from api.core.artifacts import tenant_storage
    from curation.storage import Keys

    _login(client, user_a)
    mixture = data_a["mixture"]
    url = f"/console/{tenant_a[0].pk}/mixtures/{mixture.pk}/manifest/"
    missing = client.get(url)
    assert missing.status_code == 404 and b"manifest is not stored" in missing.content
    with tenant_storage(tenant_a[0].pk).writer(Keys.manifest(mixture.pk)) as path:
        pq.write_table(pa.table({"id": ["d1", "d2"], "pool": ["science", "sports"], "repeats": [3, 1]}), path)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [(r["id"], r["pool"], r["repeats"]) for r in rows] == [("d1", "science", 3), ("d2", "sports", 1)]
    parquet = client.get(url + "?format=parquet")
    assert b"".join(parquet.streaming_content) == tenant_storage(tenant_a[0].pk).read_bytes(Keys.manifest(mixture.pk))
    assert f'mixture-{mixture.pk}.parquet' in parquet["Content-Disposition"]


def test_staff_admin_manages_tenants_quotas_users_and_memberships(admin_client, user_a, tenant_a):
    tenant = tenant_a[0]
    page = admin_client.get(f"/admin/tenancy/tenant/{tenant.pk}/change/").content.decode()
    assert "max_stored_bytes" in page and "max_concurrent_jobs" in page and "alice" in page
    assert admin_client.get("/admin/tenancy/membership/").status_code == 200
    user_page = admin_client.get(f"/admin/auth/user/{user_a.pk}/change/").content.decode()
    assert "tenant memberships (console access)" in user_page.lower()
    assert admin_client.get("/admin/schedules/schedule/").status_code == 200


def test_create_console_user_command(tenant_a, tenant_b, client):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("create_console_user", "carol", "--tenant", "tenant-a", "--tenant", "tenant-b", stdout=out)
    password = re.search(r"password: (\S+)", out.getvalue()).group(1)
    assert client.login(username="carol", password=password)
    picker = client.get("/console/").content.decode()
    assert "tenant-a" in picker and "tenant-b" in picker
    with pytest.raises(CommandError, match="no tenant named 'nope'"):
        call_command("create_console_user", "dave", "--tenant", "nope", stdout=StringIO())


def test_model_page_shows_how_the_law_was_chosen_and_its_backtest(client, user_a, tenant_a, data_a):
    """The real backtest of the fixture's pilot runs: one row per law, the chosen one marked, and the
    held-out predictions against observed with the identity line; a hostile metric name stays text."""
    _login(client, user_a)
    t, model = tenant_a[0].pk, data_a["performance_model"]
    pools = [pool_of_row(row) for row in model.pools]
    observations = [Observation(weights=o["weights"], size=o["size"], value=o["value"], origin=o["origin"])
                    for o in model.observations]
    _, report = select_law(pools, observations, higher_is_better=True, value_range=(0.0, 1.0))
    model.backtest, model.metric = report, "acc<script>alert(1)</script>"
    model.save(update_fields=["backtest", "metric"])
    page = _page(client, f"/console/{t}/models/{model.pk}/")
    section = page.split("<h2>How the law was chosen</h2>")[1].split("</section>")[0]
    rows = re.findall(r"<tr( class=\"chosen\")?><td>(\w+)", section.split("</table>")[0])
    assert sorted(kind for _, kind in rows) == sorted(report["laws"])
    assert [kind for chosen, kind in rows if chosen] == [report["chosen"]]
    assert f"held {report['coverage']['covered']:.1%} of {report['coverage']['points']} held-out pilots" in section
    chart = section.split("<svg")[1].split("</svg>")[0]
    assert chart.count("</circle>") == len(report["heldout"]) and chart.count("<polyline") == 1, "points, identity"
    assert "<script>alert" not in page and "acc&lt;script&gt;" in section


def test_a_curate_job_page_says_how_the_budget_decided_the_selection(client, user_a, tenant_a, data_a):
    _login(client, user_a)
    tenant, corpus = tenant_a[0], data_a["corpus"]
    policy = {"budget_samples": 50.0, "budget_tokens": 2140.0,
              "prune": {"keep": "hard", "abundance": 6.0, "reason": "abundant: 6 unique documents per document"},
              "betr": {"token_fraction": 0.0417, "reason": "keep 4.17% so that they are seen at most 4 times"}}
    job = Job.objects.for_tenant(tenant).create(tenant=tenant, kind="curate", params={"corpus": str(corpus.pk)},
                                                status="succeeded", stage="done", result={"budget_policy": policy})
    page = client.get(f"/console/{tenant.pk}/jobs/{job.pk}/").content.decode()
    assert 'data-field="budget-policy"' in page and "abundant: 6 unique documents per document" in page
    assert "keep hard" in page and "keep 4.2% of tokens" in page and "seen at most 4 times" in page
    other = client.get(f"/console/{tenant.pk}/jobs/{data_a['job'].pk}/").content.decode()
    assert 'data-field="budget-policy"' not in other
