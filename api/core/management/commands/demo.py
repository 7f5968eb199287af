"""``make demo``: the embedded stack plus a real run through the REST API."""
from __future__ import annotations

import io
import json
import secrets
import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from api.core.embedded import EmbeddedStack, StackAlreadyRunning
from api.tenancy.models import Tenant
from api.tenancy.services import api_key_create, tenant_create
from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl

DEMO_TENANT = "demo"


class Command(BaseCommand):
    help = "Start the embedded stack, upload a corpus and a benchmark, curate through the API, keep serving."

    def add_arguments(self, parser):
        parser.add_argument("--corpus", type=Path, help="your corpus (JSONL/CSV/Parquet, optionally .gz)")
        parser.add_argument("--benchmark", type=Path, help="your benchmark examples (same formats)")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--budget", type=float, default=300, help="training samples to plan for")
        parser.add_argument("--no-serve", action="store_true", help="stop after the run instead of serving")

    def handle(self, *args, corpus: Path | None, benchmark: Path | None, port: int, budget: float, no_serve: bool,
               **options):
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
            self._run(stack.base_url, corpus, benchmark, budget)
        except BaseException:
            stack.stop()
            raise
        if no_serve:
            stack.stop()
            return
        self.stdout.write("\nServing until Ctrl-C.")
        stack.serve_until_interrupted()
        self.stdout.write("Stopped the web server, the worker, beat and Redis.")

    def _run(self, base: str, corpus: Path, benchmark: Path, budget: float) -> None:
        tenant = Tenant.objects.filter(name=DEMO_TENANT).first()
        issued = tenant_create(name=DEMO_TENANT) if tenant is None else api_key_create(tenant=tenant, name="demo")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {issued.secret}"
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
                  "budget": budget, "eps": 0.05}
        self.stdout.write(f"\nCurating for a budget of {budget:g} training samples (job kind 'curate': embed, index, "
                          "prune, BETR, OT, pilots, fit, mixture)")
        job = call("POST", f"{api}/jobs/", json={"kind": "curate", "params": params})
        job = self._follow(call, f"{api}/jobs/{job['id']}/", "curate")
        result, stages = job["result"], job["result"]["stages"]
        prune, betr = stages["prune"], stages["betr"]
        self.stdout.write(f"\nPruned: SemDeDup kept {prune['kept']} of {prune['kept'] + prune['dropped']} documents "
                          f"({', '.join(f'{n} {r}' for r, n in prune['reasons'].items())})")
        self.stdout.write(f"BETR classifier: held-out accuracy {betr['holdout_accuracy']:.2f}; top 10% of tokens "
                          "by source: " + ", ".join(f"{k} {v}" for k, v in betr["kept_per_source"].items()))
        self.stdout.write("OT distance of each pool to the benchmark (lower is closer): "
                          + ", ".join(f"{k} {v:.3f}" for k, v in sorted(stages["ot"].items(), key=lambda i: i[1])[:5])
                          + (" ..." if len(stages["ot"]) > 5 else ""))
        self.stdout.write(f"\nMixture {result['mixture']} at {budget:g} samples")
        self.stdout.write(f"  {'pool':<22}{'weight':>8}{'unique docs':>13}{'available':>11}{'repetitions':>13}")
        for row in sorted(result["pools"], key=lambda r: -r["weight"]):
            self.stdout.write(f"  {row['pool']:<22}{row['weight']:>8.3f}{row['unique_documents']:>13}"
                              f"{row['available_documents']:>11}{row['repetitions']:>13.2f}")
        predicted = result["predicted"]
        sources = sorted(set(predicted["provenance"].values()))
        self.stdout.write(f"\nPredicted {predicted['metric']} ({'higher' if predicted['higher_is_better'] else 'lower'}"
                          f" is better): {predicted['value']:.3f}  [{predicted['low']:.3f}, {predicted['high']:.3f}]"
                          f"  parameters from: {', '.join(sources)}")
        mixture = call("GET", f"{api}/mixtures/{result['mixture']}/")
        self.stdout.write("Best mixture by budget (frontier):")
        for row in mixture["frontier"][::6]:
            top = max(row["weights"], key=row["weights"].get)
            self.stdout.write(f"  {row['budget']:>12,.0f} samples -> {row['value']:.3f}   largest pool {top} "
                              f"({row['weights'][top]:.2f})")
        self.stdout.write(f"Manifest: {result['documents']} unique documents  ({api}/mixtures/{result['mixture']}/"
                          "documents/)")

        password = secrets.token_urlsafe(12)
        call_command("create_console_user", DEMO_TENANT, tenant=[DEMO_TENANT], password=password, stdout=io.StringIO())
        self.stdout.write("\nTry it yourself")
        self.stdout.write(f"  Console             {base}/console/   (user {DEMO_TENANT!r}, password {password})")
        self.stdout.write(f"  API key             {issued.secret}   (shown once)")
        self.stdout.write(f"  Predict a mixture   curl -H 'Authorization: Bearer {issued.secret}' -H 'Content-Type: "
                          f"application/json' -d '{{\"performance_model\": \"{result['performance_model']}\", "
                          f"\"mixture\": {json.dumps(result_weights(result))}, \"budget\": {budget * 4:g}}}' "
                          f"{api}/predictions/")
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
