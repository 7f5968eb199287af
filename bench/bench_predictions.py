"""Predictions latency: ``POST /api/v1/predictions/`` against a running server.

Sets up a throw-away SQLite database and artifact root, a tenant with an API key and a
performance model fitted (:func:`curation.mixture.fit_mixture_law`) on synthetic
observations over ``--pools`` pools, starts the service's threaded WSGI server on a free
port (the web server and request handler of ``manage.py serve``), warms up, then sends ``--requests``
sequential predictions for random mixtures and budgets over one keep-alive connection.
Prints p50 / p90 / p99 / max latency and requests/s, against the same prediction
computed in-process (``MixtureLaw.predict``, the baseline: what the HTTP, auth, DB and
serialisation layers add).

    .venv/bin/python bench/bench_predictions.py
    .venv/bin/python bench/bench_predictions.py --requests 5000 --pools 100
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from harness import Run  # bench/harness.py, beside this script: machine, libraries, threads, load

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--pools", type=int, default=40)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-predictions-"))
    os.environ.update({"DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}", "ARTIFACT_ROOT": str(root / "artifacts"),
                       "DJANGO_SETTINGS_MODULE": "api.settings", "API_RATE_LIMIT": "100000/min"})
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    import requests
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer
    from django.core.wsgi import get_wsgi_application

    from api.core.embedded import QuietRequestHandler
    from api.datasets.models import Dataset
    from api.modeling.models import PerformanceModel
    from api.tenancy.services import tenant_create
    from curation.mixture import MixtureLaw, Observation, Pool, fit_mixture_law

    call_command("migrate", verbosity=0)
    issued = tenant_create(name="bench")
    tenant = issued.api_key.tenant
    rng = np.random.default_rng(0)
    names = [f"source{i // 10}/q{i % 10}" for i in range(args.pools)]
    pools = [Pool(name, int(rng.integers(500, 5000)), ot=float(rng.uniform(0.3, 0.8)), quality=float(rng.uniform()))
             for name in names]
    truth = MixtureLaw(pools=tuple(pools), c=2.0, A=1.0, beta=0.3, gamma=1.0, eta=0.5, tau=3.0,
                       higher_is_better=False)
    observations = []
    for size in (1e3, 1e4, 1e5):
        for w in rng.dirichlet(np.full(len(pools), 0.3), size=10):
            observations.append(Observation(dict(zip(names, w)), size,
                                            float(truth.metric_of(truth.effective_data(w * size)))))
    law = fit_mixture_law(pools, observations, higher_is_better=False)
    corpus = Dataset.objects.for_tenant(tenant).create(
        tenant=tenant, kind="corpus", name="bench", filename="bench.jsonl", format="jsonl", documents=100_000,
        text_bytes=10**8, tokens=10**7, stored_bytes=10**8, shard_count=10, source_counts={})
    model = PerformanceModel.objects.for_tenant(tenant).create(
        tenant=tenant, corpus=corpus, metric="loss", higher_is_better=False, parameters=law.parameters(),
        pools=law.pool_rows(), fit_error=law.rmse, provenance=dict(law.provenance))

    port = _free_port()
    server = ThreadedWSGIServer(("127.0.0.1", port), QuietRequestHandler)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}/api/v1/predictions/"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {issued.secret}"

    def body() -> dict:
        w = rng.dirichlet(np.full(len(names), 0.5))
        w[-1] = 1.0 - w[:-1].sum()
        return {"performance_model": str(model.pk), "mixture": dict(zip(names, w.tolist())),
                "budget": float(10 ** rng.uniform(3, 7))}

    bodies = [body() for _ in range(args.requests + 50)]
    for b in bodies[:50]:
        session.post(url, json=b).raise_for_status()
    latencies = []
    started = time.perf_counter()
    for b in bodies[50:]:
        t = time.perf_counter()
        response = session.post(url, json=b)
        latencies.append(time.perf_counter() - t)
        response.raise_for_status()
    wall = time.perf_counter() - started
    direct = []
    stored = MixtureLaw.from_stored(model.parameters, model.pools, model.provenance)
    for b in bodies[50:]:
        t = time.perf_counter()
        stored.predict(b["mixture"], b["budget"])
        direct.append(time.perf_counter() - t)
    server.shutdown()
    ms = np.array(latencies) * 1e3
    direct_ms = np.array(direct) * 1e3
    run = Run(f"Predictions: {args.pools} pools; {args.requests} sequential requests, SQLite")
    print("| path | p50 ms | p90 ms | p99 ms | max ms | requests/s |")
    print("|---|---|---|---|---|---|")
    for label, values, seconds in (("POST /api/v1/predictions/", ms, wall),
                                   ("MixtureLaw.predict in-process (baseline)", direct_ms, direct_ms.sum() / 1e3)):
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        print(f"| {label} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {values.max():.2f} | {len(values) / seconds:,.0f} |")
    print(f"ratio p50 (server / in-process): {np.median(ms) / np.median(direct_ms):.1f}x")
    run.finish()


if __name__ == "__main__":
    main()
