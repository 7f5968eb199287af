"""deploy/kubernetes/ against the Kubernetes API schemas (kubernetes-validate, strict: unknown
fields fail too) at a pinned version, the references between the manifests (names, labels,
ports, volumes), and the shape the deployment needs: web behind a Service and an Ingress with a
large body limit, CPU and GPU workers with resources, a single beat, a migration Job, probes
that reach something real, non-root pods."""
from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from django.test import Client
from django.urls import Resolver404, resolve

from tests.deploy.deployfiles import (APP_IMAGES, KUBERNETES, ROOT, Manifest, containers, image_name, kubernetes_files,
                                      kustomization, manifests, pod_spec, probes)

#: The Kubernetes release the manifests are validated against (its schemas ship in kubernetes-validate).
KUBERNETES_VERSION = "1.31.0"


def validation_error(doc: dict) -> str | None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'/'.join(map(str, exc.path)) or '(top)'}: {exc.message}"
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
        return exc.message
    return None


def by_kind(kind: str) -> dict[str, Manifest]:
    return {manifest.name: manifest for manifest in manifests() if manifest.kind == kind}


@pytest.mark.parametrize("manifest", manifests(), ids=str)
def test_manifest_validates_against_the_kubernetes_schema(manifest):
    error = validation_error(manifest.doc)
    assert error is None, f"{manifest} is not valid Kubernetes {KUBERNETES_VERSION}: {error}"


@pytest.mark.parametrize("change", ["unknown field", "wrong type", "missing field"])
def test_the_validation_rejects_a_broken_manifest(change):
    """The validation above can fail."""
    doc = copy.deepcopy(by_kind("Deployment")["curation-web"].doc)
    if change == "unknown field":
        doc["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    elif change == "wrong type":
        doc["spec"]["replicas"] = "two"
    else:
        del doc["spec"]["template"]["spec"]["containers"][0]["name"]
    assert validation_error(doc), f"a Deployment with a {change} went unnoticed"


def test_kustomization_lists_every_manifest():
    listed = kustomization()["resources"]
    files = [path.name for path in kubernetes_files()]
    assert sorted(listed) == sorted(files), (
        f"{KUBERNETES.relative_to(ROOT)}/kustomization.yaml lists {sorted(listed)}; the folder has {sorted(files)}")
    images = {entry["name"] for entry in kustomization().get("images", [])}
    used = {image_name(c["image"]) for m in manifests() if pod_spec(m) for c in containers(pod_spec(m))}
    assert used <= images, f"kustomization.yaml does not point {sorted(used - images)} at a registry"


def test_references_between_manifests_resolve():
    configmaps, secrets = by_kind("ConfigMap"), by_kind("Secret")
    accounts = by_kind("ServiceAccount")
    for manifest in manifests():
        pod = pod_spec(manifest)
        if pod is None:
            continue
        volumes = {volume["name"] for volume in pod.get("volumes", [])}
        if pod.get("serviceAccountName"):
            assert pod["serviceAccountName"] in accounts, f"{manifest}: no ServiceAccount {pod['serviceAccountName']}"
        for container in containers(pod):
            where = f"{manifest} container {container['name']}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, f"{where}: no ConfigMap {source['configMapRef']}"
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, f"{where}: no Secret {source['secretRef']}"
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{where} mounts {mount['name']}, not a volume of the pod ({volumes})"
            ports = {port.get("name") for port in container.get("ports", [])}
            for kind, probe in probes(container).items():
                for handler in ("httpGet", "tcpSocket"):
                    port = probe.get(handler, {}).get("port")
                    if isinstance(port, str):
                        assert port in ports, f"{where} {kind} probes port {port!r}, not one of {ports}"
        if manifest.kind == "Deployment":
            selector = manifest.doc["spec"]["selector"]["matchLabels"]
            labels = manifest.doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{manifest}: selector {selector} does not match labels {labels}"
    deployments = by_kind("Deployment")
    services = by_kind("Service")
    for service in services.values():
        selector = service.doc["spec"]["selector"]
        matched = [d for d in deployments.values()
                   if selector.items() <= d.doc["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, f"{service}: selector {selector} matches {[str(d) for d in matched]}"
        pod_ports = {port.get("name") for c in containers(pod_spec(matched[0]), init=False) for port in c.get("ports", [])}
        for port in service.doc["spec"]["ports"]:
            assert port["targetPort"] in pod_ports, f"{service}: targetPort {port['targetPort']} not in {pod_ports}"
    for ingress in by_kind("Ingress").values():
        for rule in ingress.doc["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services, f"{ingress}: no Service {backend['name']}"
                names = {port.get("name") for port in services[backend["name"]].doc["spec"]["ports"]}
                assert backend["port"].get("name") in names, f"{ingress}: Service {backend['name']} has no port {backend['port']}"


def test_web_deployment_service_and_ingress():
    web = by_kind("Deployment")["curation-web"]
    assert any(c.get("args") == ["web"] for c in containers(pod_spec(web), init=False)), f"{web} does not run web"
    assert "curation-web" in by_kind("Service")
    ingress = by_kind("Ingress")["curation"]
    annotations = ingress.doc["metadata"].get("annotations", {})
    body = annotations.get("nginx.ingress.kubernetes.io/proxy-body-size", "")
    assert body.endswith("m") and int(body[:-1]) * 1024**2 > 2 * 1024**3, (
        f"{ingress}: proxy-body-size {body!r} is below UPLOAD_MAX_BYTES (2 GiB)")


def test_web_probes_reach_a_page_that_answers(db):
    """Each HTTP probe's path resolves to a real view that answers 200 for the probe's Host
    header without a session (readiness: once the database answers), and that host is one
    ALLOWED_HOSTS lists; liveness and startup do not depend on the database."""
    allowed = by_kind("ConfigMap")["curation-config"].doc["data"]["ALLOWED_HOSTS"].split(",")
    checked = 0
    for container in containers(pod_spec(by_kind("Deployment")["curation-web"]), init=False):
        for kind, probe in probes(container).items():
            http = probe.get("httpGet")
            if not http or http["path"].startswith("/static/"):
                continue
            where = f"curation-web container {container['name']} {kind}"
            try:
                match = resolve(http["path"])
            except Resolver404:
                pytest.fail(f"{where}: {http['path']} resolves to no view (api/urls.py)")
            assert match.url_name != "not_found", f"{where}: {http['path']} is the console's 404 page"
            host = {h["name"]: h["value"] for h in http.get("httpHeaders", [])}.get("Host")
            assert host in allowed, f"{where}: the probe's Host header {host!r} is not in ALLOWED_HOSTS {allowed}"
            response = Client().get(http["path"], HTTP_HOST=host)
            assert response.status_code == 200, f"{where}: GET {http['path']} answers {response.status_code}"
            if kind != "readinessProbe":
                assert match.url_name == "healthz", f"{where}: {http['path']} must not depend on the database"
            checked += 1
    assert checked >= 3, "the web container needs startup, liveness and readiness probes"


def test_workers_have_resources_probes_and_the_gpu():
    deployments = by_kind("Deployment")
    for name, role in (("curation-worker-cpu", "worker-cpu"), ("curation-worker-gpu", "worker-gpu")):
        assert name in deployments, f"no Deployment {name}"
        [worker] = [c for c in containers(pod_spec(deployments[name]), init=False) if c.get("args") == [role]]
        resources = worker.get("resources", {})
        assert resources.get("requests", {}).get("cpu") and resources.get("limits", {}).get("memory"), (
            f"{deployments[name]}: {role} needs CPU requests and a memory limit ({resources})")
        assert {"livenessProbe", "readinessProbe"} <= set(probes(worker)), f"{deployments[name]}: {role} has no probes"
    gpu_pod = pod_spec(deployments["curation-worker-gpu"])
    [gpu] = [c for c in containers(gpu_pod, init=False) if c.get("args") == ["worker-gpu"]]
    assert gpu["resources"]["limits"].get("nvidia.com/gpu") == 1, "the GPU worker must request one nvidia.com/gpu"
    assert gpu["image"].endswith(":cuda"), f"the GPU worker runs {gpu['image']}, not the CUDA image"
    assert gpu_pod.get("nodeSelector") and gpu_pod.get("tolerations"), "the GPU worker needs a nodeSelector and tolerations"
    cpu_pod = pod_spec(deployments["curation-worker-cpu"])
    assert all("nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}) for c in containers(cpu_pod))


def test_beat_is_a_single_replica_recreated():
    beat = by_kind("Deployment")["curation-beat"]
    assert beat.doc["spec"]["replicas"] == 1, f"{beat}: beat must run exactly once"
    assert beat.doc["spec"]["strategy"]["type"] == "Recreate", f"{beat}: a rolling update runs two beats at once"
    assert [c.get("args") for c in containers(pod_spec(beat), init=False)] == [["beat"]]


def test_migration_job():
    job = by_kind("Job")["curation-migrate"]
    pod = pod_spec(job)
    assert [c.get("args") for c in pod["containers"]] == [["migrate"]], f"{job} does not run migrate"
    assert pod["restartPolicy"] in ("OnFailure", "Never")


def test_pods_run_as_non_root_without_privileges():
    for manifest in manifests():
        pod = pod_spec(manifest)
        if pod is None:
            continue
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{manifest}: runAsNonRoot is not set"
        for container in containers(pod):
            context = container.get("securityContext", {})
            where = f"{manifest} container {container['name']}"
            assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false"
            assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities are not dropped"
            if image_name(container["image"]) in APP_IMAGES:
                assert context.get("readOnlyRootFilesystem") is True, f"{where}: the root filesystem is writable"


def test_placeholders_are_marked():
    secret = by_kind("Secret")["curation-secrets"]
    for key, value in secret.doc["stringData"].items():
        assert "REPLACE-ME" in value, f"{secret}: {key} holds a value that is not a marked placeholder"
    assert "PLACEHOLDER" in (KUBERNETES / "configmap.yaml").read_text()
