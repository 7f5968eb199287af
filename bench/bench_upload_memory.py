"""Peak memory of hostile uploads: what ``curation.ingest.ingest_file`` holds for a gzip bomb and
for one very long line (issue 10, item 8).

Cases (each generated into a temporary directory, streamed, never held in memory here):

- ``gzip-bomb``: about 1 MB of gzip that inflates to ``--bomb-mb`` (default 1,000 MB) of a
  single unterminated JSON line, ``{"text": "aaaa...``;
- ``gzip-bomb-lines``: about 1 MB of gzip that inflates to ``--bomb-mb`` of valid, identical
  1 KB JSON lines (stopped by the compression ratio, not by the line length);
- ``long-line``: one JSONL line of ``--line-mb`` (default 50 MB) of short words, then a
  normal line;
- ``longest-line``: the same, one line just under the default line limit (8 MiB): the most
  one line can cost once the limits are in place.

Each ingest runs in a *fresh* Python process with the service's default limits (the
defaults of ``ingest_file``): the figure is that process's peak RSS (``VmHWM``) minus its
RSS once ``curation.ingest`` is imported, i.e. what the upload added. ``--code DIR``
runs the ingest from another checkout (e.g. ``git archive`` of the commit before the
limits) to measure the "before" figure with the same inputs.

    .venv/bin/python bench/bench_upload_memory.py
    .venv/bin/python bench/bench_upload_memory.py --code /tmp/base   # the same inputs, older code

Prints a Markdown table; everything generated is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from harness import Run  # bench/harness.py, beside this script: machine, libraries, threads, load

ROOT = Path(__file__).resolve().parent.parent
MB = 10**6

_CHILD = r"""
import json, sys, time
from pathlib import Path

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

from curation.ingest import IngestError, ingest_file
base = status("VmRSS")
path, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir()
started = time.perf_counter()
try:
    result = ingest_file(path, filename=path.name, out_dir=out)
    outcome = f"accepted ({result.documents} documents)"
except IngestError as exc:
    outcome = f"{exc.code} (line {exc.detail['line']})" if exc.detail["line"] else exc.code
print(json.dumps({"added_mb": (status("VmHWM") - base) / 1e6, "outcome": outcome,
                  "seconds": time.perf_counter() - started}))
"""


def write_bomb(path: Path, inflated_mb: int) -> None:
    """A gzip file of one unterminated JSON line of ``inflated_mb`` MB ('a' repeated)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    chunk = b"a" * MB
    with open(path, "wb") as sink:
        sink.write(compressor.compress(b'{"text": "'))
        for _ in range(inflated_mb):
            sink.write(compressor.compress(chunk))
        sink.write(compressor.flush())


def write_bomb_lines(path: Path, inflated_mb: int) -> None:
    """A gzip file of ``inflated_mb`` MB of one valid 1 KB JSON line, repeated."""
    line = json.dumps({"text": "x" * 1010}).encode() + b"\n"
    chunk = line * (MB // len(line))
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as sink:
        for _ in range(inflated_mb):
            sink.write(compressor.compress(chunk))
        sink.write(compressor.flush())


def write_long_line(path: Path, line_bytes: int) -> None:
    """One JSONL line of ``line_bytes`` bytes (line ending included) of short words, then a normal line."""
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " * 13_000
    body = line_bytes - len(b'{"text": "') - len(b'"}\n')
    with open(path, "wb") as sink:
        sink.write(b'{"text": "')
        while body > 0:
            sink.write(words[:body])
            body -= len(words)
        sink.write(b'"}\n' + json.dumps({"text": "short"}).encode() + b"\n")


def measure(path: Path, out: Path, code: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    # cwd outside any checkout: ``python -c`` puts the working directory first on sys.path.
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(out)], env=env, cwd=path.parent,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bomb-mb", type=int, default=1000, help="what the gzip bomb inflates to, MB")
    parser.add_argument("--line-mb", type=int, default=50, help="the long line, MB")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose curation/ingest.py runs")
    args = parser.parse_args()
    run = Run("Hostile uploads (memory)")
    work = Path(tempfile.mkdtemp(prefix="bench-upload-memory-"))
    try:
        bomb, lines, line, longest = (work / "bomb.jsonl.gz", work / "bomb-lines.jsonl.gz", work / "long.jsonl",
                                      work / "longest.jsonl")
        write_bomb(bomb, args.bomb_mb)
        write_bomb_lines(lines, args.bomb_mb)
        write_long_line(line, args.line_mb * MB)
        write_long_line(longest, 8 * 1024**2)
        print(f"code: {args.code}\n")
        print("| case | file | added peak RSS MB | outcome | s |")
        print("|---|---|---:|---|---:|")
        for name, path, what in (
            ("gzip-bomb", bomb, f"{bomb.stat().st_size / MB:.2f} MB gzip -> {args.bomb_mb} MB, one line"),
            ("gzip-bomb-lines", lines, f"{lines.stat().st_size / MB:.2f} MB gzip -> {args.bomb_mb} MB of 1 KB lines"),
            ("long-line", line, f"one {args.line_mb} MB line"),
            ("longest-line", longest, "one line of 8 MiB, the default limit"),
        ):
            figures = measure(path, work / f"out-{name}", args.code)
            print(f"| {name} | {what} | {figures['added_mb']:.0f} | {figures['outcome']} | {figures['seconds']:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run.finish()


if __name__ == "__main__":
    main()
