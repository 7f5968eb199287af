"""The fair benchmark harness every ``bench/bench_*.py`` script uses.

- :func:`environment` / :class:`Run`: the machine (CPU, cores, RAM), every BLAS and
  OpenMP library loaded with its core type and threads (``threadpoolctl.threadpool_info()``),
  torch's threads, and the load average before and after; a run whose load average
  exceeded the number of cores is flagged, because its timings measure the other jobs.
- :func:`interleave`: ours and every baseline run in rounds, the order rotating from round
  to round, so that all see the same changes of load; :class:`Comparison` reports each
  one's median and the median over rounds of the paired ratio (baseline time / ours, in
  the same round: > 1 means ours is faster).
- :func:`measure`: one call's wall and CPU seconds and its peak RSS above the RSS before it
  (``VmHWM``, reset through ``/proc/self/clear_refs``).

    run = Run("Sinkhorn")                      # prints the machine, the libraries, the load
    cmp = interleave({"ours": f, "pot": g}, rounds=5)
    print(cmp.median_s("pot"), cmp.paired_ratio("pot", "ours"))
    run.finish()                               # prints the load after, and the flag if any
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


def cpu_and_ram() -> str:
    """``"2 CPU (AMD EPYC ...), 23.5 GiB RAM"`` from /proc/cpuinfo and /proc/meminfo."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
        with open("/proc/meminfo") as meminfo:
            ram = int(meminfo.readline().split()[1]) / 1024**2
    except OSError:
        return f"{os.cpu_count()} CPU ({cpu})"
    return f"{os.cpu_count()} CPU ({cpu}), {ram:.1f} GiB RAM"


def shared_data_dir() -> Path:
    """The real datasets: ``$SHARED_DATA_DIR`` if set, else ``../shared/data`` next to the repository."""
    configured = os.environ.get("SHARED_DATA_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"


def libraries() -> list[str]:
    """One line per thread pool loaded: ``"blas openblas 0.3.31 (SkylakeX, pthreads) in numpy.libs: 2 threads"``."""
    from threadpoolctl import threadpool_info

    lines = []
    for pool in threadpool_info():
        details = ", ".join(str(pool[key]) for key in ("architecture", "threading_layer") if pool.get(key))
        parts = Path(pool["filepath"]).parts  # the package that ships it: site-packages/<package>/...
        where = parts[parts.index("site-packages") + 1] if "site-packages" in parts else Path(pool["filepath"]).name
        lines.append(f"{pool['user_api']} {pool['internal_api']} {pool.get('version') or ''}".rstrip()
                     + (f" ({details})" if details else "") + f" in {where}: {pool['num_threads']} threads")
    try:
        import torch

        lines.append(f"torch {torch.__version__}: {torch.get_num_threads()} intra-op threads")
    except ImportError:
        pass
    return lines


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def environment() -> str:
    """Markdown lines: machine, Python, libraries and threads, load average now."""
    return "\n".join([f"- machine: {cpu_and_ram()}, Python {platform.python_version()}",
                      *(f"- {line}" for line in libraries()),
                      f"- load average at start: {load():.2f} on {os.cpu_count()} cores"])


class Run:
    """One benchmark run: prints the environment at the start, the load and its flag at :meth:`finish`.

    Call :meth:`note_load` inside long runs (every round does it through :func:`interleave`):
    the flag covers the highest load seen, not only the two ends.
    """

    def __init__(self, title: str, *, quiet: bool = False):
        self.title, self.cores = title, os.cpu_count() or 1
        self.load_before = self.load_max = load()
        if not quiet:
            print(f"# {title}\n\n{environment()}\n", flush=True)

    def note_load(self) -> float:
        now = load()
        self.load_max = max(self.load_max, now)
        return now

    @property
    def loaded(self) -> bool:
        return self.load_max > self.cores

    def finish(self) -> str:
        """Print and return the closing line: load before, after, highest, and the flag."""
        after = self.note_load()
        line = (f"load average: {self.load_before:.2f} before, {after:.2f} after, {self.load_max:.2f} highest seen "
                f"on {self.cores} cores")
        if self.loaded:
            line += (" -- LOADED: the load exceeded the core count, other jobs shared the cores; "
                     "read the paired ratios, not the absolute times")
        print(f"\n{line}", flush=True)
        return line


def _status_bytes(field_name: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def rss_mb(field_name: str = "VmRSS") -> float:
    """``VmRSS`` or ``VmHWM`` of this process in MiB."""
    return _status_bytes(field_name) / 2**20


@dataclass
class Measured:
    result: Any
    seconds: float
    cpu_seconds: float
    peak_above_mb: float  # VmHWM during the call minus VmRSS before it (MiB)
    peak_mb: float  # VmHWM during the call (MiB)


def measure(fn: Callable[[], Any]) -> Measured:
    """Run ``fn()`` once: wall and process CPU seconds, peak RSS."""
    reset_peak()
    before = rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    peak = rss_mb("VmHWM")
    return Measured(result, seconds, cpu_seconds, max(peak - before, 0.0), peak)


@dataclass
class Comparison:
    """Every method's measurements over the rounds (``runs[name][round]``), and the loads."""

    runs: dict[str, list[Measured]]
    loads: list[float] = field(default_factory=list)

    def seconds(self, name: str) -> list[float]:
        return [m.seconds for m in self.runs[name]]

    def median_s(self, name: str) -> float:
        return statistics.median(self.seconds(name))

    def best_s(self, name: str) -> float:
        return min(self.seconds(name))

    def paired_ratio(self, baseline: str, ours: str) -> float:
        """Median over rounds of ``baseline time / ours time`` in the same round (> 1: ours faster)."""
        return statistics.median(b / o for b, o in zip(self.seconds(baseline), self.seconds(ours)))

    def peak_above_mb(self, name: str) -> float:
        return max(m.peak_above_mb for m in self.runs[name])

    def result(self, name: str) -> Any:
        return self.runs[name][-1].result


def interleave(methods: dict[str, Callable[[], Any]], *, rounds: int, run: Run | None = None,
               warmup: bool = False, log: Callable[[str], None] | None = None) -> Comparison:
    """Run every method once per round, the order rotating by one each round.

    ``warmup`` runs each once first, untimed. ``log`` gets a line per round (times and load).
    """
    names = list(methods)
    if warmup:
        for name in names:
            methods[name]()
    comparison = Comparison({name: [] for name in names})
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            comparison.runs[name].append(measure(methods[name]))
        comparison.loads.append(run.note_load() if run else load())
        if log:
            log(f"round {round_ + 1}/{rounds}: " + ", ".join(f"{n} {comparison.runs[n][-1].seconds:.3f} s"
                                                             for n in names) + f"; load {comparison.loads[-1]:.2f}")
    return comparison


def run_child(script: str, args: list[str]) -> dict:
    """Run ``script`` with ``args`` in a fresh Python process (its stderr shown as it runs); its result is
    the JSON object on the last line of its stdout."""
    done = subprocess.run([sys.executable, str(Path(script).resolve()), *args], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sizes_in_fresh_processes(script: str, sizes: list[int], argv: list[str]) -> tuple[list[dict], float]:
    """``run_child(script, argv + ["--child", n])`` for every size ``n``: the results and the seconds they took."""
    started = time.perf_counter()
    results = []
    for n in sizes:
        print(f"n = {n:,}: running in a fresh process", file=sys.stderr, flush=True)
        results.append(run_child(script, [*argv, "--child", str(n)]))
    return results, time.perf_counter() - started
