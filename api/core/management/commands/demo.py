"""``make demo``: the embedded stack plus a real run through the REST API."""
from __future__ import annotations

import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from api.core.embedded import EmbeddedStack
from api.tenancy.models import Tenant
from api.tenancy.services import api_key_create, tenant_create
from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl

DEMO_TENANT = "demo"


class Command(BaseCommand):
    help = "Start the embedded stack, upload a corpus and a benchmark, run a job through the API, keep serving."

    def add_arguments(self, parser):
        parser.add_argument("--corpus", type=Path, help="your corpus (JSONL/CSV/Parquet, optionally .gz)")
        parser.add_argument("--benchmark", type=Path, help="your benchmark examples (same formats)")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="stop after the run instead of serving")

    def handle(self, *args, corpus: Path | None, benchmark: Path | None, port: int, no_serve: bool, **options):
        for path in (corpus, benchmark):
            if path is not None and not path.is_file():
                raise CommandError(f"{path} is not a file")
        demo_dir = Path(settings.VAR_DIR) / "demo"
        corpus = corpus or write_jsonl(demo_corpus(), demo_dir / "demo_corpus.jsonl")
        benchmark = benchmark or write_jsonl(demo_benchmark(), demo_dir / "demo_benchmark.jsonl")

        stack = EmbeddedStack(port=port)
        self.stdout.write("Starting the embedded stack (Redis, Celery worker, web server)...")
        stack.start()
        try:
            stack.wait_for_worker()
            self._run(stack.base_url, corpus, benchmark)
        except BaseException:
            stack.stop()
            raise
        if no_serve:
            stack.stop()
            return
        self.stdout.write("\nServing until Ctrl-C.")
        stack.serve_until_interrupted()
        self.stdout.write("Stopped the web server, the worker and Redis.")

    def _run(self, base: str, corpus: Path, benchmark: Path) -> None:
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

        job = call("POST", f"{api}/jobs/", json={"kind": "embed", "params": {"corpus": uploaded["corpora"]["id"]}})
        job = self._follow(call, f"{api}/jobs/{job['id']}/", "embed corpus")
        bench_job = call("POST", f"{api}/jobs/",
                         json={"kind": "embed", "params": {"benchmark": uploaded["benchmarks"]["id"]}})
        self._follow(call, f"{api}/jobs/{bench_job['id']}/", "embed benchmark")

        result = job["result"]
        self.stdout.write("\nEmbedding summary")
        self.stdout.write(f"  embedder            {result['embedder_version']} ({result['dim']}-d)")
        self.stdout.write(f"  documents           {result['documents']} in {result['shards']} shards")
        self.stdout.write(f"  reused from cache   {result['shards_reused_from_cache']} shards")
        if result["documents_per_second"]:
            self.stdout.write(f"  throughput          {result['documents_per_second']} documents/s")
        self.stdout.write(f"  wall time           {job['timings']['elapsed_seconds']} s")
        self.stdout.write("\nTry it yourself")
        self.stdout.write(f"  API key             {issued.secret}   (shown once)")
        self.stdout.write(f"  API                 {api}/   e.g. curl -H 'Authorization: Bearer {issued.secret}' "
                          f"{api}/usage/")
        self.stdout.write(f"  API docs            {base}/api/docs/")
        self.stdout.write(f"  Admin console       {base}/admin/   (create a login: .venv/bin/python manage.py "
                          "createsuperuser)")

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
