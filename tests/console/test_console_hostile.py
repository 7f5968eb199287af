"""Stored XSS: every console page, with markup in every field a user controls, rendered in
Chromium (and with Django's test client) must run no script and inject no element.

The hostile string closes a ``<script>``, a ``<title>`` and an attribute, then opens an
``<img onerror>`` and an ``<svg onload>`` that would record themselves. The page fails
on any executed handler, any element carrying the marker attribute, and any
Content-Security-Policy violation (a value that slipped past escaping is blocked by the
policy, and the browser reports it). Pages that show the data must show it as text.
"""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from api.console import charts
from api.datasets.models import Contamination
from api.jobs.models import Job, JobUnit
from api.tenancy.models import ApiKey
from api.tenancy.services import api_key_create
from tests.console.conftest import PASSWORD, fill_tenant
from tests.console.test_console_browser import browser_page  # noqa: F401 - fixture
from tests.console.test_console_pages import _path_for, _tenant_patterns

#: 76 characters, so that it fits every field with the suffixes below (names and metrics hold 100).
HOSTILE = "\"'></title></script><img src=x data-xss onerror=__xss=1><svg onload=__xss=2>"

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)", re.I)
#: Pages that must show the hostile text (as text): the tenant picker, dataset, job,
#: mixture, model and pilot-run pages, schedules and keys.
SHOWS_IT = {"overview", "datasets", "dataset", "jobs", "job", "mixtures", "mixture", "models", "model",
            "pilot_runs", "schedules", "schedule", "keys"}
#: Views that only answer POST, or stream a file.
NOT_PAGES = {"dataset_delete", "job_cancel", "job_retry", "job_progress", "schedule_toggle", "schedule_delete",
             "key_revoke", "key_new", "mixture_manifest"}


def hostile_tenant(make_tenant, make_user) -> tuple:
    """A tenant whose every user-controlled string carries :data:`HOSTILE`."""
    tenant, _ = make_tenant(HOSTILE[:60] + " team")
    user = make_user("staff-viewer", tenant, staff=True)
    objects = fill_tenant(tenant, documents=120, embed_job=False, label=HOSTILE, metric=HOSTILE + " accuracy")
    objects["job"] = Job.objects.for_tenant(tenant).create(
        tenant=tenant, kind="curate", status="failed", stage="mixture", error=HOSTILE + " failed",
        params={"corpus": str(objects["corpus"].pk), "note": HOSTILE},
        plan=[{"name": "mixture", "units": 1, "queue": "cpu"}], shards_total=1,
        result={"pools": [{"pool": HOSTILE, "weight": 1.0}], "mixture": {HOSTILE: 1.0}})
    objects["key"] = api_key_create(tenant=tenant, name=HOSTILE).api_key
    JobUnit.objects.for_tenant(tenant).create(tenant=tenant, job=objects["job"], stage="contamination", index=0,
                                              seconds=0.1, output={})
    for kind, span, similarity in (("ngram", HOSTILE + " span", None), ("semantic", None, 0.95)):
        Contamination.objects.for_tenant(tenant).create(
            tenant=tenant, corpus=objects["corpus"], benchmark=objects["benchmark"], job=objects["job"],
            document_id=HOSTILE + " doc", position=3, item_id=HOSTILE + " item", kind=kind, span=span,
            similarity=similarity)
    return tenant, user, objects


def _pages(tenant, objects) -> list[tuple[str, str]]:
    names = [p.name for p in _tenant_patterns() if p.name not in NOT_PAGES]
    pages = [(name, _path_for(name, tenant.pk, objects)) for name in names]
    pages += [("picker", reverse("console:home")), ("404", f"/console/{tenant.pk}/no/such/page/")]
    return pages


def test_charts_escape_every_label():
    chart = charts.line_chart(HOSTILE, [charts.Series(HOSTILE, [(1.0, 2.0), (2.0, 3.0)], band=[(1.0, 1.5, 2.5)])],
                              x_label=HOSTILE, y_label=HOSTILE, vertical_marker=(1.5, HOSTILE), description=HOSTILE)
    bars = charts.bar_chart(HOSTILE, [(HOSTILE, 1.0)], description=HOSTILE)
    hist = charts.histogram(HOSTILE, [0.0, 0.5, 1.0], {HOSTILE: [1, 2]}, x_label=HOSTILE)
    for svg in (chart.svg, bars.svg, hist.svg):
        assert "<img" not in svg and "<svg onload" not in svg and "</script>" not in svg and "</title>\"" not in svg
        assert "&lt;img src=x data-xss" in svg


def test_every_page_escapes_and_sends_a_strict_policy(client, make_tenant, make_user):
    tenant, user, objects = hostile_tenant(make_tenant, make_user)
    assert client.login(username=user.username, password=PASSWORD)
    for name, path in _pages(tenant, objects):
        response = client.get(path)
        assert response.status_code in (200, 404), (name, response.status_code)
        body = response.content.decode()
        assert "<img src=x" not in body and "<svg onload" not in body and "</script><img" not in body, name
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy, (name, policy)
        assert not INLINE_SCRIPT.search(body) and " style=" not in body, f"{name}: inline script or style"
        if name in SHOWS_IT:
            assert "&lt;img src=x data-xss" in body, f"{name} does not show the hostile value"
    assert objects["key"].pk in ApiKey.objects.for_tenant(tenant).values_list("pk", flat=True)
    corpus_page = client.get(reverse("console:dataset", args=[tenant.pk, "corpora", objects["corpus"].pk]))
    shown = corpus_page.content.decode()
    assert "data-contamination" in shown and "data-xss onerror=__xss=1&gt;&lt;svg onload=__xss=2&gt; span" in shown


INIT = """
window.__violations = [];
window.__dialogs = 0;
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));
"""


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_no_console_page_runs_injected_script_in_chromium(live_server, make_tenant, make_user, browser_page):
    page = browser_page
    page.add_init_script(INIT)
    tenant, user, objects = hostile_tenant(make_tenant, make_user)
    pages = _pages(tenant, objects) + [("admin", "/admin/"), ("admin-tenants", "/admin/tenancy/tenant/"),
                                       ("api-docs", "/api/docs/")]
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server.url}/console/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    checked = []
    for name, path in pages:
        page.goto(live_server.url + path, wait_until="load")
        page.wait_for_timeout(150)  # let onload/onerror handlers (if any were injected) fire
        state = page.evaluate("() => ({xss: window.__xss || null, injected: document.querySelectorAll("
                              "'[data-xss]').length, violations: window.__violations, "
                              "text: document.documentElement.textContent})")
        assert state["xss"] is None and not dialogs, f"{name}: injected script ran"
        assert state["injected"] == 0, f"{name}: {state['injected']} injected element(s)"
        assert state["violations"] == [], f"{name}: CSP violations {state['violations']}"
        if name in SHOWS_IT:
            assert "<img src=x data-xss" in state["text"], f"{name} does not show the hostile value"
        checked.append(name)
    assert page.locator(".swagger-ui").count() == 1, "Swagger UI renders under the policy"
    assert {"job", "mixture", "model", "pilot_runs", "dataset", "picker"} <= set(checked)
