"""The console in a real browser: Debian's Chromium driven by Playwright (headless)
against the live server, with a real Celery worker on a real Redis for the job.

Walks what an operator does: log in, upload a corpus through the form, start a job and
watch the progress bar reach done without a reload, open the mixture page and find its
chart, create a schedule and read its next run, and try another tenant's URL (404).
A screenshot of every page is saved under ``var/test-artifacts/screenshots/``.

Needs ``/usr/bin/chromium`` (``make test`` installs it with apt-get) and the
``playwright`` package; without them the test skips, except under CI where it fails.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import BASE_DIR
from curation.demo_data import demo_corpus, write_jsonl
from tests.console.conftest import PASSWORD, fill_tenant
from tests.workers.test_worker_integration import _database_url, broker, stop_process  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(BASE_DIR) / "var" / "test-artifacts" / "screenshots"


def _browser_or_skip():
    problems = []
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).is_file():
        problems.append(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    if problems:
        reason = "browser tests need a browser: " + "; ".join(problems)
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must run them (make test installs both)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def worker(broker, artifact_root, tmp_path):  # noqa: F811 - the imported fixture
    env = {**os.environ, "REDIS_URL": broker, "DATABASE_URL": _database_url(), "ARTIFACT_ROOT": str(artifact_root),
           "DJANGO_SETTINGS_MODULE": "api.settings", "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu,gpu", "--concurrency", "1",
         "--loglevel", "INFO", "--hostname", "console-browser@%h"],
        env=env, cwd=BASE_DIR, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    yield process
    stop_process(process)
    print("--- worker.log ---\n" + log.read_text(errors="replace")[-3000:])


@pytest.fixture
def browser_page(monkeypatch):
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_operator_walkthrough_in_chromium(live_server, make_tenant, make_user, worker, browser_page, tmp_path,
                                          settings):
    settings.SCHEDULE_MIN_INTERVAL_SECONDS = 60
    page = browser_page
    demo, _ = make_tenant("demo")
    other, _ = make_tenant("other-team")
    make_user("operator", demo)
    data = fill_tenant(demo, embed_job=False)
    foreign = fill_tenant(other, documents=60, embed_job=False)
    base = live_server.url

    # Log in: the console sends an anonymous visitor to the login page, then to their one tenant.
    page.goto(f"{base}/console/")
    assert "/console/login/" in page.url
    shot(page, "01-login")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/console/{demo.pk}/")
    assert page.get_by_role("heading", name="demo").is_visible()
    assert page.locator("meter").count() == 3
    shot(page, "02-overview")

    # Upload a corpus through the form; a bad file shows the API's error first.
    page.get_by_role("link", name="Corpora").click()
    shot(page, "03-corpora")
    page.get_by_role("link", name="Upload corpus").click()
    bad = write_jsonl([{"id": "x", "text": "fine"}, {"id": "y"}], tmp_path / "broken.jsonl")
    page.set_input_files("#id_file", str(bad))
    page.get_by_role("button", name="Upload").click()
    assert "missing_field" in page.locator(".error-box").inner_text()
    assert "broken.jsonl, line 2, field 'text'" in page.locator(".error-box").inner_text()
    corpus_file = write_jsonl(demo_corpus(240, seed=7), tmp_path / "web_crawl.jsonl")
    page.set_input_files("#id_file", str(corpus_file))
    page.fill("#id_shard_size", "60")
    shot(page, "04-upload-form")
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("h1:has-text('web_crawl.jsonl')")
    assert "Uploaded web_crawl.jsonl: 240 documents in 4 shards." in page.locator(".messages").inner_text()
    assert page.locator("svg[role=img]").first.is_visible()
    shot(page, "05-corpus-detail")

    # Start an embed job from the corpus page and watch it finish without a reload.
    page.get_by_role("link", name="Start a job").click()
    params = page.input_value("#id_params")
    page.fill("#id_params", params.replace('"minilm"', '"hashing"'))
    assert '"hashing"' in page.input_value("#id_params")
    page.get_by_role("button", name="Start job").click()
    page.wait_for_selector("#job-progress")
    page.evaluate("window.__sameDocument = true")
    # Predicates are functions, not expression strings: the page's policy forbids eval.
    page.wait_for_function(
        "() => document.querySelector('#job-progress [data-status]').textContent === 'succeeded'", timeout=150_000)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of polling"
    page.wait_for_function("() => { const bar = document.querySelector('.progress'); "
                           "return bar.querySelector('.progress-fill').getBoundingClientRect().width "
                           ">= bar.getBoundingClientRect().width - 1; }")
    bar = page.get_by_role("progressbar", name="Job progress")
    assert bar.get_attribute("aria-valuenow") == "100"
    assert page.locator("[data-field=percent]").inner_text() == "100%"
    assert page.locator(".unit-grid .cell.done").count() == 5, "4 embedding shards and the summary"
    assert not page.locator("[data-show-when=active]").is_visible(), "cancel hides once the job is done"
    assert page.locator("[data-field=result]").is_visible()
    shot(page, "06-job-done")
    page.get_by_role("link", name="Jobs", exact=True).first.click()
    shot(page, "07-jobs")

    # Scores, the mixture and its chart, models and pilot runs.
    page.goto(f"{base}/console/{demo.pk}/corpora/{data['corpus'].pk}/")
    assert page.locator("figure svg[role=img] title", has_text="prototypes scores").count() == 1
    shot(page, "08-corpus-scores")
    page.get_by_role("link", name="Mixtures").click()
    shot(page, "09-mixtures")
    page.locator(f"a[href$='/mixtures/{data['mixture'].pk}/']").click()
    weights = page.get_by_role("img", name="Weight per pool")
    assert weights.is_visible() and weights.locator("rect").count() >= 4
    frontier = page.get_by_role("img", name="Predicted accuracy against budget")
    assert frontier.is_visible() and frontier.locator("polygon").count() == 1
    shot(page, "10-mixture")
    page.get_by_role("link", name="Models & pilots").click()
    shot(page, "11-models")
    page.locator(f"a[href$='/models/{data['performance_model'].pk}/']").click()
    assert page.get_by_role("img", name="Observations and fitted accuracy").is_visible()
    shot(page, "12-performance-model")
    page.goto(f"{base}/console/{demo.pk}/pilot-runs/")
    assert page.locator("svg[role=img] polyline").count() >= 3
    shot(page, "13-pilot-runs")
    page.get_by_role("link", name="Benchmarks").click()
    shot(page, "14-benchmarks")

    # Create a schedule and read its next run.
    page.get_by_role("link", name="Schedules").click()
    page.get_by_role("link", name="New schedule").click()
    page.fill("#id_name", "hourly re-embed")
    page.check("input[name=timing][value=interval]")
    page.fill("#id_interval_seconds", "3600")
    assert not page.locator("#id_cron").is_visible(), "the cron input hides for an interval"
    page.select_option("#id_kind", "embed")
    page.fill("#id_params", '{"corpus": "%s", "embedder": "hashing"}' % data["corpus"].pk)
    shot(page, "15-schedule-form")
    page.get_by_role("button", name="Create schedule").click()
    page.wait_for_selector("#next-run time")
    next_run = dt.datetime.fromisoformat(page.get_attribute("#next-run time", "datetime"))
    remaining = (next_run - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 3500 <= remaining <= 3601, remaining
    shot(page, "16-schedule")
    page.get_by_role("link", name="Schedules").first.click()
    assert page.locator("td", has_text="hourly re-embed").count() == 1
    shot(page, "17-schedules")

    # API keys: the secret is shown once.
    page.get_by_role("link", name="API keys").click()
    page.fill("#id_name", "notebook")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("cur_")
    shot(page, "18-api-key-created")
    page.get_by_role("link", name="Back to API keys").click()
    assert secret not in page.content()
    shot(page, "19-api-keys")

    # Another tenant's pages and objects are not found.
    for path in (f"/console/{other.pk}/", f"/console/{other.pk}/corpora/{foreign['corpus'].pk}/",
                 f"/console/{demo.pk}/corpora/{foreign['corpus'].pk}/",
                 f"/console/{demo.pk}/mixtures/{foreign['mixture'].pk}/"):
        response = page.goto(base + path)
        assert response.status == 404, path
        assert page.get_by_role("heading", name="Not found").is_visible()
        assert "other-team" not in page.content()
    shot(page, "20-other-tenant-404")
