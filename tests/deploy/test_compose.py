"""deploy/compose.yaml against the Compose specification's JSON schema (vendored: README.md
beside this file), and the shape the deployment needs: health checks and the conditions that
wait for them, one-shots for the bucket and the migration, the GPU worker in its own profile
with a device reservation, and no volume shared between the application's services (they
share PostgreSQL, Redis and the object store only)."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.deploy.deployfiles import COMPOSE, ROOT, compose, compose_app_services, compose_command, compose_environment

SCHEMA = Path(__file__).with_name("compose-spec.json")
SCHEMA_COMMIT = "170098ba07d9f53c383a41bfd4c5166b0a4529a6"  # compose-spec/compose-spec, schema/compose-spec.json
WHERE = COMPOSE.relative_to(ROOT)


def schema_errors(document: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
            for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def test_schema_is_the_vendored_one():
    schema = json.loads(SCHEMA.read_text())
    assert schema.get("title") == "Compose Specification" and schema.get("$id") == "compose_spec.json", SCHEMA
    assert SCHEMA_COMMIT in (SCHEMA.parent / "README.md").read_text(), "README.md must name the schema's commit"


def test_compose_file_matches_the_specification():
    errors = schema_errors(compose())
    assert not errors, f"{WHERE} does not match the Compose specification:\n  " + "\n  ".join(errors)


@pytest.mark.parametrize("path, value", [
    (("services", "web", "depends_on", "postgres", "condition"), "service_sleepy"),
    (("services", "web", "restart_policy"), "always"),
    (("services", "worker-gpu", "deploy", "resources", "reservations", "devices", 0, "capabilities"), "gpu"),
])
def test_the_schema_rejects_a_broken_file(path, value):
    """The validation above can fail: a wrong condition, an unknown key, a wrong type."""
    broken = copy.deepcopy(compose())
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert schema_errors(broken), f"setting {'/'.join(map(str, path))} = {value!r} went unnoticed"


def test_every_service_the_stack_needs_is_there():
    services = compose()["services"]
    for name in ("postgres", "redis", "minio", "createbuckets", "migrate", "web", "proxy", "worker-cpu",
                 "worker-gpu", "beat"):
        assert name in services, f"{WHERE} has no service {name}"
    assert compose_command(services["web"]) == ["web"]
    assert compose_command(services["beat"]) == ["beat"]
    assert compose_command(services["migrate"]) == ["migrate"]
    assert "mc mb" in " ".join(compose_command(services["createbuckets"])), "createbuckets does not make the bucket"


def test_health_checks_and_the_conditions_that_wait_for_them():
    services = compose()["services"]
    for name in ("postgres", "redis", "minio", "web", "proxy", "worker-cpu", "worker-gpu"):
        assert (services[name].get("healthcheck") or {}).get("test"), f"{WHERE}: service {name} has no health check"
    one_shots = {name for name, service in services.items() if service.get("restart") == "no"}
    assert one_shots >= {"createbuckets", "migrate"}, one_shots
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{WHERE}: service {name} lists depends_on without conditions"
        for dependency, rule in depends.items():
            assert dependency in services, f"{WHERE}: {name} depends on a service {dependency} that does not exist"
            condition = rule.get("condition")
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), (
                    f"{WHERE}: {name} waits for {dependency} to be healthy, which has no health check")
            elif condition == "service_completed_successfully":
                assert dependency in one_shots, f"{WHERE}: {name} waits for {dependency} to finish, a long-running service"
            else:
                pytest.fail(f"{WHERE}: {name} depends on {dependency} with condition {condition!r}")
    for name in compose_app_services():
        if name == "migrate":
            continue
        depends = services[name]["depends_on"]
        assert depends.get("migrate", {}).get("condition") == "service_completed_successfully", (
            f"{WHERE}: {name} starts before the migration has finished")
        assert depends.get("createbuckets", {}).get("condition") == "service_completed_successfully", (
            f"{WHERE}: {name} starts before the bucket exists")


def test_gpu_worker_reserves_a_gpu_in_its_own_profile():
    services = compose()["services"]
    gpu = services["worker-gpu"]
    assert gpu.get("profiles") == ["gpu"], f"{WHERE}: worker-gpu must be in the profile gpu only"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device.get("capabilities", []) for device in devices), devices
    assert gpu["build"]["args"]["VARIANT"] == "cuda", "the GPU worker must run the CUDA image"
    for name, service in services.items():
        if not service.get("profiles"):
            assert "worker-gpu" not in (service.get("depends_on") or {}), f"{name} needs the gpu profile to start"
    default = [name for name, service in services.items() if not service.get("profiles")]
    assert "worker-cpu" in default and "web" in default, default


def test_application_services_share_no_volume():
    """No shared artifact volume: each application container keeps its own files."""
    for name, service in compose_app_services().items():
        assert not service.get("volumes"), f"{WHERE}: application service {name} mounts {service['volumes']}"
        assert not service.get("volumes_from"), f"{WHERE}: application service {name} uses volumes_from"
    owners: dict[str, str] = {}
    for name, service in compose()["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            assert source not in owners, f"{WHERE}: volume {source} is mounted by both {owners.get(source)} and {name}"
            owners[source] = name


def test_application_services_use_the_object_store():
    services = compose()["services"]
    for name, service in compose_app_services().items():
        env = compose_environment(service)
        url = str(env.get("ARTIFACT_URL") or "")
        assert url.startswith("s3://"), f"{WHERE}: {name} has ARTIFACT_URL={url!r}, not the object store"
        endpoint = urlsplit(str(env.get("S3_ENDPOINT_URL") or ""))
        assert endpoint.hostname in services, f"{WHERE}: {name}'s S3_ENDPOINT_URL names no service ({endpoint.geturl()})"
        for credential in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env.get(credential), f"{WHERE}: {name} has no {credential} for MinIO"
        database = urlsplit(str(env.get("DATABASE_URL") or ""))
        assert database.scheme == "postgres" and database.hostname in services, f"{name}: DATABASE_URL {database.geturl()}"
        assert urlsplit(str(env.get("REDIS_URL") or "")).hostname in services, f"{name}: REDIS_URL"


def test_web_is_reached_through_the_proxy_only():
    services = compose()["services"]
    assert not services["web"].get("ports"), f"{WHERE}: web publishes a port; the proxy is the way in"
    assert services["proxy"].get("ports"), f"{WHERE}: the proxy publishes no port"
    assert services["proxy"]["environment"]["CURATION_UPSTREAM"] == "web:8000"
