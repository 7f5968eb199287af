"""Import layering: ``curation`` and ``numeric_kernels`` are pure libraries, ``api`` never imports ``workers``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("django", "celery", "kombu", "rest_framework", "drf_spectacular", "django_celery_beat", "api", "workers")
FORBIDDEN = {"curation": FRAMEWORKS, "numeric_kernels": FRAMEWORKS, "api": ("workers",)}


def imported_modules(tree: ast.AST):
    """``(line, module)`` for every absolute import, ``import_module("x")`` and ``__import__("x")`` included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            yield node.lineno, node.args[0].value


def offenders(source: str, forbidden: tuple[str, ...], filename: str) -> list[str]:
    return [f"{filename}:{line}: imports {module}" for line, module in imported_modules(ast.parse(source, filename))
            if module.split(".")[0] in forbidden]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_in_their_layer(package):
    found = [problem for path in sorted((ROOT / package).rglob("*.py"))
             for problem in offenders(path.read_text(encoding="utf-8"), FORBIDDEN[package],
                                      str(path.relative_to(ROOT)))]
    assert not found, f"{package}/ must not import {', '.join(FORBIDDEN[package])}:\n" + "\n".join(found)


def test_the_check_sees_every_form_of_import():
    source = ("import os, django.db\nfrom celery import group\nfrom . import api\nfrom apiary import x\n"
              "def f():\n    importlib.import_module('workers.tasks')\n    __import__('kombu')\n")
    assert offenders(source, FRAMEWORKS, "x.py") == [
        "x.py:1: imports django.db", "x.py:2: imports celery", "x.py:6: imports workers.tasks", "x.py:7: imports kombu"]
