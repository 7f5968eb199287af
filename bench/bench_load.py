"""Load: ``--clients`` concurrent clients for ``--seconds`` against the embedded server and gunicorn.

Sets up a throw-away state (its own SQLite database, artifact root, ``VAR_DIR`` and stack
state directory under a temporary folder, so it never meets another stack), ``--tenants``
tenants, one API key per client spread over them, and per tenant a corpus, a benchmark
and a performance model fitted (:func:`curation.mixture.fit_mixture_law`, as
``bench_predictions.py``) on synthetic observations over ``--pools`` pools. Then, for each
server in turn (``manage.py serve``: the embedded stack with Redis, worker and beat; and
``gunicorn api.wsgi --workers 4``, the production command of deploy/README.md), starts it,
warms up, and runs the clients: separate processes, each client a thread with its own key
and keep-alive session, sending a mix of reads (corpora list and detail, jobs list, model
detail, usage) and ``POST /api/v1/predictions/`` (``--predict-share`` of the requests)
back to back. Prints, per server: requests, errors (non-2xx or failed), requests/s, p50 /
p99 latency, and the 1-minute load average sampled during the run; plus the machine and
the BLAS/threads line (``threadpoolctl.threadpool_info()``).

    .venv/bin/python bench/bench_load.py
    .venv/bin/python bench/bench_load.py --clients 20 --seconds 30 --servers gunicorn
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_and_ram  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(root: Path) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}", "ARTIFACT_ROOT": str(root / "artifacts"),
           "VAR_DIR": str(root / "var"), "DJANGO_SETTINGS_MODULE": "api.settings", "API_RATE_LIMIT": "1000000/min",
           "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    return env


def set_up(args, env: dict[str, str]) -> list[dict]:
    """Tenants, keys and objects; returns one ``{"secret", "corpus", "model", "pools"}`` per client."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from api.datasets.models import Dataset
    from api.modeling.models import PerformanceModel
    from api.tenancy.services import api_key_create, tenant_create
    from curation.mixture import MixtureLaw, Observation, Pool, fit_mixture_law

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(0)
    names = [f"source{i // 10}/q{i % 10}" for i in range(args.pools)]
    pools = [Pool(name, int(rng.integers(500, 5000)), ot=float(rng.uniform(0.3, 0.8)), quality=float(rng.uniform()))
             for name in names]
    truth = MixtureLaw(pools=tuple(pools), c=2.0, A=1.0, beta=0.3, gamma=1.0, eta=0.5, tau=3.0, higher_is_better=False)
    observations = [Observation(dict(zip(names, w)), size, float(truth.metric_of(truth.effective_data(w * size))))
                    for size in (1e3, 1e4, 1e5) for w in rng.dirichlet(np.full(len(pools), 0.3), size=10)]
    law = fit_mixture_law(pools, observations, higher_is_better=False)
    clients = []
    for t in range(args.tenants):
        issued = tenant_create(name=f"load-{t}")
        tenant = issued.api_key.tenant
        secrets = [issued.secret] + [api_key_create(tenant=tenant, name=f"client-{i}").secret
                                     for i in range(1, -(-args.clients // args.tenants))]
        objects = Dataset.objects.for_tenant(tenant)
        corpus = objects.create(tenant=tenant, kind="corpus", name="load", filename="load.jsonl", format="jsonl",
                                documents=100_000, text_bytes=10**8, tokens=10**7, stored_bytes=10**8, shard_count=10,
                                source_counts={})
        objects.create(tenant=tenant, kind="benchmark", name="target", filename="target.jsonl", format="jsonl",
                       documents=100, text_bytes=10**4, tokens=10**3, stored_bytes=10**4, shard_count=1,
                       source_counts={})
        model = PerformanceModel.objects.for_tenant(tenant).create(
            tenant=tenant, corpus=corpus, metric="loss", higher_is_better=False, parameters=law.parameters(),
            pools=law.pool_rows(), fit_error=law.rmse, provenance=dict(law.provenance))
        clients += [{"secret": s, "corpus": str(corpus.pk), "model": str(model.pk), "pools": names} for s in secrets]
    return [{**client, "index": i} for i, client in enumerate(clients[:args.clients])]


def _requests_of(client: dict, rng: random.Random, predict_share: float):
    """Endlessly: (method, path, json body or None) of the mixed workload."""
    reads = ["/api/v1/corpora/", f"/api/v1/corpora/{client['corpus']}/", "/api/v1/jobs/",
             f"/api/v1/performance-models/{client['model']}/", "/api/v1/usage/"]
    names = client["pools"]
    while True:
        if rng.random() < predict_share:
            w = [rng.random() for _ in names]
            total = sum(w)
            mixture = {name: x / total for name, x in zip(names, w)}
            mixture[names[-1]] = 1.0 - sum(list(mixture.values())[:-1])
            yield "POST", "/api/v1/predictions/", {"performance_model": client["model"], "mixture": mixture,
                                                   "budget": 10 ** rng.uniform(3, 7)}
        else:
            yield "GET", rng.choice(reads), None


def _client_process(base: str, clients: list[dict], seconds: float, predict_share: float, start_at: float,
                    queue) -> None:
    """Runs its clients (one thread each) until ``start_at + seconds``; puts (latencies, errors, samples)."""
    import requests

    results = []

    def run(index: int, client: dict) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {client['secret']}"
        rng = random.Random(index)
        latencies, errors, kinds = [], 0, {}
        workload = _requests_of(client, rng, predict_share)
        while time.time() < start_at:
            time.sleep(0.01)
        while time.time() < start_at + seconds:
            method, path, body = next(workload)
            began = time.perf_counter()
            try:
                response = session.request(method, base + path, json=body, timeout=60)
                ok = 200 <= response.status_code < 300
                if not ok:
                    kinds[str(response.status_code)] = kinds.get(str(response.status_code), 0) + 1
            except requests.RequestException as exc:
                ok = False
                kind = f"{method} {path.split('/')[3]}: {exc}"[:120]
                kinds[kind] = kinds.get(kind, 0) + 1
            latencies.append(time.perf_counter() - began)
            errors += not ok
        results.append((latencies, errors, kinds))

    threads = [threading.Thread(target=run, args=(c["index"], c)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(results)


def _wait_for(url: str, timeout: float = 120) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError(f"the server at {url} did not answer within {timeout} s")


def _threads_line() -> str:
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded by this process after ``django.setup()``
    and the set-up (numpy, the law's fit), and the OMP/MKL thread settings the servers inherit."""
    from threadpoolctl import threadpool_info

    pools = ", ".join(f"{p['internal_api']} {p.get('version')} x{p['num_threads']}" for p in threadpool_info())
    limits = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    return f"threadpools: {pools or 'none'}; env {limits or 'unset'}"


def run_server(name: str, args, env: dict[str, str], root: Path, clients: list[dict]) -> dict:
    port = _free_port()
    if name == "embedded":
        command = [sys.executable, "manage.py", "serve", "--port", str(port), "--state-dir", str(root / "state")]
    else:
        command = [sys.executable, "-m", "gunicorn", "api.wsgi", "--workers", "4", "--timeout", "600",
                   "--bind", f"127.0.0.1:{port}"]
    log = open(root / f"{name}.log", "w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base + "/api/v1/schema/", timeout=180)
        import requests

        for client in clients:  # warm-up: every key once, every process's caches
            requests.get(base + "/api/v1/usage/", headers={"Authorization": f"Bearer {client['secret']}"}, timeout=60)
        queue = multiprocessing.get_context("fork").Queue()
        start_at = time.time() + 2
        groups = [clients[i::args.processes] for i in range(args.processes)]
        procs = [multiprocessing.get_context("fork").Process(
            target=_client_process, args=(base, group, args.seconds, args.predict_share, start_at, queue))
            for group in groups]
        for proc in procs:
            proc.start()
        loads = []
        while time.time() < start_at + args.seconds:
            time.sleep(5)
            if time.time() > start_at:
                loads.append(os.getloadavg()[0])
        results = [item for _ in procs for item in queue.get()]
        for proc in procs:
            proc.join()
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()
    latencies = np.array([x for r in results for x in r[0]]) * 1e3
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r[2].items():
            kinds[k] = kinds.get(k, 0) + v
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"server": name, "requests": len(latencies), "errors": sum(r[1] for r in results), "error_kinds": kinds,
            "rps": len(latencies) / args.seconds, "p50": p50, "p99": p99, "load_min": min(loads),
            "load_max": max(loads), "load_mean": sum(loads) / len(loads)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--pools", type=int, default=40)
    parser.add_argument("--predict-share", type=float, default=0.3)
    parser.add_argument("--processes", type=int, default=5, help="client processes (the clients' threads spread)")
    parser.add_argument("--servers", default="embedded,gunicorn")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        env = _environment(root)
        clients = set_up(args, env)
        threads = _threads_line()
        rows = [run_server(name, args, env, root, clients) for name in args.servers.split(",")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"machine: {cpu_and_ram()}; {threads}")
    print(f"{args.clients} clients ({args.tenants} tenants, one key each) for {args.seconds:.0f} s, "
          f"{args.predict_share:.0%} predictions ({args.pools} pools), the rest reads; SQLite; "
          f"clients in {args.processes} processes on the same machine")
    print("| server | requests | errors | requests/s | p50 ms | p99 ms | load average (1 min) during the run |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        errors = f"{r['errors']}" + (f" ({', '.join(f'{k}: {v}' for k, v in r['error_kinds'].items())})"
                                     if r["error_kinds"] else "")
        print(f"| {r['server']} | {r['requests']:,} | {errors} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
              f"{r['load_min']:.1f}-{r['load_max']:.1f} (mean {r['load_mean']:.1f}) |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
