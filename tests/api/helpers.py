from __future__ import annotations

import io
import json

from django.core.files.uploadedfile import SimpleUploadedFile


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def upload(client, kind: str, filename: str, content: bytes, **form):
    """POST a multipart upload to /api/v1/<kind>/ (kind: corpora or benchmarks)."""
    data = {"file": SimpleUploadedFile(filename, content), **{k: str(v) for k, v in form.items()}}
    return client.post(f"/api/v1/{kind}/", data, format="multipart")


def small_corpus(n: int = 30) -> bytes:
    sources = ["alpha", "beta", "gamma"]
    return jsonl([{"id": f"d{i}", "text": f"document {i} about {sources[i % 3]} topics", "source": sources[i % 3]}
                  for i in range(n)])


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "detail"}, body
    return body["error"]


__all__ = ["jsonl", "upload", "small_corpus", "files_under", "error_of", "io"]
