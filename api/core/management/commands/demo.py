"""``make demo``: the embedded stack plus a real run through the REST API.

Safe to re-run: each run uses the same ``demo`` tenant and console user, keeps the console
password of the last run while it still works (it lives in ``VAR_DIR/demo/``, readable by
its owner only), and revokes the previous run's demo API key when it issues a new one (a
key's secret is shown once and not stored, so it cannot be shown again).
"""
from __future__ import annotations

import io
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from api.core.embedded import EmbeddedStack, StackAlreadyRunning
from api.tenancy.models import Tenant
from api.tenancy.services import api_key_rotate
from curation import summary
from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl
from curation.embedders import DEFAULT_EMBEDDER
from curation.pilots import metric_unit

DEMO_TENANT = "demo"
DEMO_USER = "demo"
DEMO_KEY = "demo"


@dataclass(frozen=True)
class DemoLogin:
    """The demo's credentials for this run: ``key`` (the new API key's secret), ``revoked``
    (earlier demo keys revoked), the console ``password`` and whether it is the last run's."""

    tenant: Tenant
    key: str
    revoked: int
    password: str
    password_kept: bool


def demo_login(*, var_dir: Path) -> DemoLogin:
    """The demo tenant (created on the first run), one active demo API key, and the console
    user ``demo`` with the password of the last run if it still works, else a new one."""
    tenant, _ = Tenant.objects.get_or_create(name=DEMO_TENANT)
    issued, revoked = api_key_rotate(tenant=tenant, name=DEMO_KEY)
    stored = var_dir / "demo" / "console-password"
    user = get_user_model().objects.filter(username=DEMO_USER).first()
    kept = stored.is_file() and user is not None and user.check_password(stored.read_text().strip())
    password = stored.read_text().strip() if kept else secrets.token_urlsafe(12)
    call_command("create_console_user", DEMO_USER, tenant=[DEMO_TENANT], password=password, stdout=io.StringIO())
    if not kept:
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.unlink(missing_ok=True)
        with os.fdopen(os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(password + "\n")
    return DemoLogin(tenant=tenant, key=issued.secret, revoked=revoked, password=password, password_kept=kept)


def login_lines(base: str, login: DemoLogin) -> list[str]:
    """The summary's console login and API key, saying what changed since the last run."""
    password = "unchanged since the last run" if login.password_kept else "new"
    earlier = ("" if not login.revoked else "; the last run's demo key is revoked" if login.revoked == 1 else
               f"; the {login.revoked} earlier demo keys are revoked")
    return [f"  Console             {base}/console/   (user {DEMO_USER!r}, password {login.password}; {password})",
            f"  API key             {login.key}   (shown once{earlier})"]


class Command(BaseCommand):
    help = "Start the embedded stack, upload a corpus and a benchmark, curate through the API, keep serving."

    def add_arguments(self, parser):
        parser.add_argument("--corpus", type=Path, help="your corpus (JSONL/CSV/Parquet, optionally .gz)")
        parser.add_argument("--benchmark", type=Path, help="your benchmark examples (same formats)")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--budget", type=float, default=300, help="training samples to plan for")
        parser.add_argument("--embedder", help="minilm (the default), hashing, hashing:DIM or an EXTRA_EMBEDDERS name")
        parser.add_argument("--no-serve", action="store_true", help="stop after the run instead of serving")

    def handle(self, *args, corpus: Path | None, benchmark: Path | None, port: int, budget: float,
               embedder: str | None, no_serve: bool, **options):
        for path in (corpus, benchmark):
            if path is not None and not path.is_file():
                raise CommandError(f"{path} is not a file")
        demo_dir = Path(settings.VAR_DIR) / "demo"
        corpus = corpus or write_jsonl(demo_corpus(), demo_dir / "demo_corpus.jsonl")
        benchmark = benchmark or write_jsonl(demo_benchmark(), demo_dir / "demo_benchmark.jsonl")

        stack = EmbeddedStack(port=port)
        self.stdout.write("Starting the embedded stack (Redis, Celery worker, web server)...")
        try:
            stack.start()
        except StackAlreadyRunning as exc:
            raise CommandError(str(exc)) from None
        try:
            stack.wait_for_worker()
            self._run(stack.base_url, corpus, benchmark, budget, embedder)
        except BaseException:
            stack.stop()
            raise
        if no_serve:
            stack.stop()
            return
        self.stdout.write("\nServing until Ctrl-C.")
        stack.serve_until_interrupted()
        self.stdout.write("Stopped the web server, the worker, beat and Redis.")

    def _run(self, base: str, corpus: Path, benchmark: Path, budget: float, embedder: str | None) -> None:
        login = demo_login(var_dir=Path(settings.VAR_DIR))
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {login.key}"
        api = f"{base}/api/v1"

        def call(method: str, url: str, **kwargs) -> dict:
            response = session.request(method, url, timeout=600, **kwargs)
            body = response.json() if response.content else {}
            if response.status_code >= 400:
                error = body.get("error", {})
                raise CommandError(f"{method} {url} -> {response.status_code} {error.get('code')}: "
                                   f"{error.get('message')}")
            return body

        uploaded = {}
        for kind, path in (("corpora", corpus), ("benchmarks", benchmark)):
            with open(path, "rb") as handle:
                uploaded[kind] = call("POST", f"{api}/{kind}/", files={"file": (path.name, handle)},
                                      data={"shard_size": "100"} if kind == "corpora" else {})
            d = uploaded[kind]
            self.stdout.write(f"Uploaded {kind[:-1] if kind == 'benchmarks' else 'corpus'} {path.name}: "
                              f"{d['documents']} documents, {d['tokens']} tokens, {d['shard_count']} shards "
                              f"(id {d['id']})")
        sources = uploaded["corpora"]["sources"]
        self.stdout.write("  documents per source: " + ", ".join(f"{k or '(none)'} {v}" for k, v in sources.items()))

        params = {"corpus": uploaded["corpora"]["id"], "benchmarks": [uploaded["benchmarks"]["id"]],
                  "budget": budget, "eps": 0.05, **({"embedder": embedder} if embedder else {})}
        self.stdout.write(f"\nCurating for a budget of {budget:g} training samples with the "
                          f"{embedder or DEFAULT_EMBEDDER} embedder (job kind 'curate': embed, index, prune, BETR, OT, "
                          "pilots, fit, mixture)")
        job = call("POST", f"{api}/jobs/", json={"kind": "curate", "params": params})
        job = self._follow(call, f"{api}/jobs/{job['id']}/", "curate")
        result, stages = job["result"], job["result"]["stages"]
        prune, betr = stages["prune"], stages["betr"]
        self.stdout.write(f"\nPruned: SemDeDup kept {prune['kept']} of {prune['kept'] + prune['dropped']} documents "
                          f"({', '.join(f'{n} {r}' for r, n in prune['reasons'].items())})")
        self.stdout.write(summary.betr_line(betr))
        self.stdout.write("\n".join(summary.budget_policy_lines(result.get("budget_policy"))))
        self.stdout.write("OT distance of each pool to the benchmark (lower is closer): "
                          + ", ".join(f"{k} {v:.3f}" for k, v in sorted(stages["ot"].items(), key=lambda i: i[1])[:5])
                          + (" ..." if len(stages["ot"]) > 5 else ""))
        self.stdout.write("\n".join(summary.pilots_lines(stages["pilots"], stages["fit"])))
        self.stdout.write(f"\nMixture {result['mixture']} at {budget:g} samples")
        self.stdout.write("\n".join(summary.pool_table(result["pools"])))
        self.stdout.write("\n" + summary.prediction_line(result["predicted"]))
        if law_line := summary.backtest_line(result["predicted"]):
            self.stdout.write(law_line)
        mixture = call("GET", f"{api}/mixtures/{result['mixture']}/")
        predicted = result["predicted"]
        unit = predicted.get("unit") or metric_unit(predicted["metric"])
        self.stdout.write(f"Best mixture by budget (frontier; predicted {predicted['metric']}"
                          f"{f' in {unit}' if unit else ''}):")
        for row in mixture["frontier"][::6]:
            top = max(row["weights"], key=row["weights"].get)
            flags = "".join(f"  {flag}" for flag, on in (("EXTRAPOLATED", row.get("extrapolated")),
                                                          ("CLAMPED", row.get("clamped"))) if on)
            self.stdout.write(f"  {row['budget']:>12,.0f} samples -> {row['value']:.3f} "
                              f"[{row['low']:.3f}, {row['high']:.3f}]   largest pool {top} "
                              f"({row['weights'][top]:.2f}){flags}")
        self.stdout.write("  (EXTRAPOLATED: beyond the sizes or repetitions the pilots covered; the band is widened)")
        self.stdout.write(f"Manifest: {result['documents']} unique documents  ({api}/mixtures/{result['mixture']}/"
                          "documents/)")
        if dataset := result.get("dataset"):
            self.stdout.write(f"Training-ready dataset: {dataset['rows']:,} rows (repeats expanded) in "
                              f"{dataset['shards']} Parquet shard(s), shuffled with seed {dataset['seed']}  "
                              f"({api}/mixtures/{result['mixture']}/dataset/)")
        self.stdout.write(summary.contamination_line(result.get("contamination"),
                                                     f"{api}/corpora/{result['corpus']}/contamination/"))

        self.stdout.write("\nTry it yourself")
        self.stdout.write("\n".join(login_lines(base, login)))
        self.stdout.write(f"  Predict a mixture   curl -H 'Authorization: Bearer {login.key}' -H 'Content-Type: "
                          f"application/json' -d '{{\"performance_model\": \"{result['performance_model']}\", "
                          f"\"mixture\": {json.dumps(result_weights(result))}, \"budget\": {budget * 4:g}}}' "
                          f"{api}/predictions/")
        self.stdout.write(f"  Design pilot runs   curl -H 'Authorization: Bearer {login.key}' -H 'Content-Type: "
                          f"application/json' -d '{{\"corpus\": \"{result['corpus']}\", \"runs\": 16}}' "
                          f"{api}/pilot-designs/   (the mixtures and sizes to train)")
        self.stdout.write(f"  Your pilot runs     curl -H 'Authorization: Bearer {login.key}' -H 'Content-Type: "
                          f"application/json' -d '[{{\"corpus\": \"{result['corpus']}\", \"mixture\": "
                          f"{json.dumps(result_weights(result))}, \"size\": 100000, \"metric\": \"accuracy\", "
                          f"\"value\": 0.41}}]' {api}/pilot-runs/   (one per training run you made; then a fit "
                          "job with params.metric=accuracy fits your metric)")
        self.stdout.write(f"  API docs            {base}/api/docs/")

    def _follow(self, call, url: str, label: str) -> dict:
        job = call("GET", url)
        with tqdm(total=max(job["progress"]["shards_total"], 1), desc=label, unit="shard") as bar:
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                job = call("GET", url)
                bar.update(job["progress"]["shards_done"] - bar.n)
                bar.set_postfix_str(job["stage"])
        if job["status"] != "succeeded":
            raise CommandError(f"{label} job {job['id']} {job['status']}: {job['error']}")
        return job


def result_weights(result: dict) -> dict:
    """The mixture's weights rounded for a copy-paste example, still summing to 1."""
    weights = {row["pool"]: round(row["weight"], 4) for row in result["pools"] if row["weight"] > 0}
    largest = max(weights, key=weights.get)
    weights[largest] = round(weights[largest] + 1 - sum(weights.values()), 6)
    return weights
