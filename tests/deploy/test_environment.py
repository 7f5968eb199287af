"""Every environment variable api/settings.py reads (and the object-store settings of issue 15)
is in deploy/env.example, in the environment of every application service of the compose file,
and in the Kubernetes ConfigMap or Secret that every application container loads; and every
variable those files set is read by someone (no misspelt names)."""
from __future__ import annotations

import pytest

from tests.deploy.deployfiles import (APP_IMAGES, COMPOSE, ENV_EXAMPLE, OBJECT_STORE_SETTINGS, READ_ELSEWHERE, ROOT,
                                      compose, compose_app_services, compose_environment, containers,
                                      env_example_variables, image_name, manifests, pod_spec, required_variables,
                                      settings_variables)


def missing(required: dict[str, str], present: set[str]) -> list[str]:
    return [f"{name} (read at {where})" for name, where in sorted(required.items()) if name not in present]


def unknown(present: set[str]) -> list[str]:
    known = set(required_variables()) | set(READ_ELSEWHERE)
    return sorted(present - known)


def test_settings_parser_finds_every_way_of_reading():
    found = settings_variables()
    for name in ("DATABASE_URL", "VAR_DIR", "SECRET_KEY", "HTTPS", "JOB_SHARD_TIME_LIMIT", "DB_CONN_MAX_AGE"):
        assert name in found, f"the parser of api/settings.py missed {name}: found {sorted(found)}"
    source = '''
import os
from os import environ
def env_path(key, default):
    raw = os.environ.get(key)
    return default if raw is None else raw
A = os.environ.get("A1")
B = os.environ["A2"]
C = env_path("A3", "/x")
D = os.getenv("A4")
E = "A5" in os.environ
F = environ.get("A6", "")
'''
    assert set(settings_variables(source)) == {"A1", "A2", "A3", "A4", "A5", "A6"}


def test_env_example_lists_every_setting():
    gaps = missing(required_variables(), env_example_variables())
    assert not gaps, f"{ENV_EXAMPLE.relative_to(ROOT)} lacks:\n  " + "\n  ".join(gaps)


def test_env_example_sets_nothing_unknown():
    extra = unknown(env_example_variables())
    assert not extra, f"{ENV_EXAMPLE.relative_to(ROOT)} sets {extra}, which nothing reads (a typo?)"


def test_env_example_names_the_object_store_credentials():
    text = ENV_EXAMPLE.read_text()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert f"# {name}=" in text, f"{ENV_EXAMPLE.relative_to(ROOT)} should show {name} as a comment"
    assert "shared filesystem" not in text, "ARTIFACT_ROOT is local-disk mode for one host, not a shared filesystem"


@pytest.mark.parametrize("service", sorted(compose_app_services()))
def test_compose_services_get_every_setting(service):
    env = compose_environment(compose()["services"][service])
    gaps = missing(required_variables(), set(env))
    assert not gaps, f"{COMPOSE.relative_to(ROOT)} service {service} has no environment entry for:\n  " + "\n  ".join(gaps)
    extra = unknown(set(env))
    assert not extra, f"{COMPOSE.relative_to(ROOT)} service {service} sets {extra}, which nothing reads"


def test_every_compose_application_service_is_checked():
    assert set(compose_app_services()) >= {"web", "worker-cpu", "worker-gpu", "beat", "migrate"}


def kubernetes_config() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    configmaps, secrets = {}, {}
    for manifest in manifests():
        if manifest.kind == "ConfigMap":
            configmaps[manifest.name] = set(manifest.doc.get("data", {}))
        elif manifest.kind == "Secret":
            secrets[manifest.name] = set(manifest.doc.get("stringData", {})) | set(manifest.doc.get("data", {}))
    return configmaps, secrets


def test_kubernetes_configmap_and_secret_hold_every_setting():
    configmaps, secrets = kubernetes_config()
    present = set().union(*configmaps.values(), *secrets.values())
    gaps = missing(required_variables(), present)
    assert not gaps, "no ConfigMap or Secret in deploy/kubernetes/ sets:\n  " + "\n  ".join(gaps)
    extra = unknown(present)
    assert not extra, f"deploy/kubernetes/ sets {extra}, which nothing reads"
    both = set().union(*configmaps.values()) & set().union(*secrets.values())
    assert not both, f"{sorted(both)} are in a ConfigMap and a Secret: which one wins depends on envFrom's order"
    for name in ("SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"):
        assert name in set().union(*secrets.values()), f"{name} belongs in the Secret, not the ConfigMap"


def test_every_application_container_loads_the_configmap_and_the_secret():
    configmaps, secrets = kubernetes_config()
    checked = 0
    for manifest in manifests():
        pod = pod_spec(manifest)
        for container in containers(pod) if pod else []:
            if image_name(container["image"]) not in APP_IMAGES:
                continue
            sources = container.get("envFrom", [])
            loaded_maps = {s["configMapRef"]["name"] for s in sources if "configMapRef" in s}
            loaded_secrets = {s["secretRef"]["name"] for s in sources if "secretRef" in s}
            where = f"{manifest} container {container['name']}"
            assert loaded_maps == set(configmaps), f"{where} loads ConfigMaps {loaded_maps}, not {set(configmaps)}"
            assert loaded_secrets == set(secrets), f"{where} loads Secrets {loaded_secrets}, not {set(secrets)}"
            env_names = {item["name"] for item in container.get("env", [])}
            extra = unknown(env_names)
            assert not extra, f"{where} sets {extra}, which nothing reads"
            checked += 1
    assert checked >= 6, f"only {checked} application containers found"


def test_object_store_settings_are_required_before_settings_read_them():
    assert set(OBJECT_STORE_SETTINGS) <= set(required_variables())
