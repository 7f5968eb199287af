"""Readers of the deploy files for the tests beside this module: the Dockerfile's stages, the
entrypoint's roles, the compose file, the Kubernetes manifests, the variables api/settings.py
reads, and the commands every file runs. Plain parsing, no Docker or cluster."""
from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "env.example"
KUBERNETES = DEPLOY / "kubernetes"
NGINX_TEMPLATE = DEPLOY / "nginx" / "default.conf.template"
SETTINGS = ROOT / "api" / "settings.py"

#: The object-store settings of issue 15, required everywhere even before api/settings.py reads them.
OBJECT_STORE_SETTINGS = ("ARTIFACT_URL", "S3_ENDPOINT_URL", "S3_REGION", "ARTIFACT_CACHE_DIR", "ARTIFACT_CACHE_BYTES")

#: Variables the deploy files may set that api/settings.py does not read, and who does.
READ_ELSEWHERE = {
    "HF_HUB_OFFLINE": "huggingface_hub (no downloads at run time)",
    "AWS_ACCESS_KEY_ID": "boto3 (the bucket's credentials)",
    "AWS_SECRET_ACCESS_KEY": "boto3 (the bucket's credentials)",
    "WEB_CONCURRENCY": "deploy/docker-entrypoint.sh (gunicorn workers)",
    "CELERY_CONCURRENCY": "deploy/docker-entrypoint.sh (CPU worker processes)",
}

#: The entrypoint's roles that run the service's own processes.
APP_IMAGES = ("curation",)


# --- api/settings.py ---------------------------------------------------------------------

def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or a bare ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _env_reads(node: ast.AST):
    """``(key node, line)`` for every read of the environment under ``node``: ``os.environ.get(k)``,
    ``os.environ[k]``, ``os.getenv(k)``, ``k in os.environ``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and sub.args:
            func = sub.func
            if isinstance(func, ast.Attribute) and (
                    (func.attr in ("get", "pop", "setdefault") and _is_environ(func.value)) or func.attr == "getenv"):
                yield sub.args[0], sub.lineno
        elif isinstance(sub, ast.Subscript) and _is_environ(sub.value):
            yield sub.slice, sub.lineno
        elif isinstance(sub, ast.Compare) and len(sub.ops) == 1 and isinstance(sub.ops[0], (ast.In, ast.NotIn)) \
                and _is_environ(sub.comparators[0]):
            yield sub.left, sub.lineno


def settings_variables(source: str | None = None) -> dict[str, int]:
    """Every environment variable api/settings.py reads, with the line it is read on: directly,
    or through a helper defined there that reads the variable its first parameter names
    (``env_int("X", 3)``, ``env_bool("X", False)``)."""
    tree = ast.parse(source if source is not None else SETTINGS.read_text(), str(SETTINGS))
    helpers = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.args.args:
            param = fn.args.args[0].arg
            if any(isinstance(key, ast.Name) and key.id == param for key, _ in _env_reads(fn)):
                helpers.add(fn.name)
    found: dict[str, int] = {}
    for key, line in _env_reads(tree):
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.setdefault(key.value, line)
    for call in ast.walk(tree):
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in helpers and call.args
                and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
            found.setdefault(call.args[0].value, call.lineno)
    return found


def required_variables() -> dict[str, str]:
    """What every deploy file must set: name -> where the requirement comes from."""
    required = {name: f"api/settings.py:{line}" for name, line in settings_variables().items()}
    for name in OBJECT_STORE_SETTINGS:
        required.setdefault(name, "the object-store settings (issue 15)")
    return required


def env_example_variables() -> set[str]:
    """Names set by a ``NAME=value`` line of deploy/env.example (commented-out lines are not)."""
    return {match.group(1) for match in re.finditer(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE)}


# --- Dockerfile --------------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"deploy/Dockerfile has no stage {name!r} (stages: {[s.name for s in self.stages]})")

    def chain(self, name: str, build_args: dict[str, str] | None = None) -> list[Stage]:
        """The stage and the local stages it is built FROM, nearest first."""
        args = {**self.global_args, **(build_args or {})}
        names = {stage.name for stage in self.stages}
        chain = [self.stage(name)]
        while True:
            base = substitute(chain[-1].base, args)
            if base not in names:
                return chain
            chain.append(self.stage(base))

    def base_image(self, name: str, build_args: dict[str, str] | None = None) -> str:
        return substitute(self.chain(name, build_args)[-1].base, {**self.global_args, **(build_args or {})})

    def user(self, name: str, build_args: dict[str, str] | None = None) -> str | None:
        """The USER an image built to this target runs as (None: the base image's)."""
        for stage in self.chain(name, build_args):
            if stage.values("USER"):
                return stage.values("USER")[-1].strip()
        return None

    def env(self, name: str, build_args: dict[str, str] | None = None) -> dict[str, str]:
        merged: dict[str, str] = {}
        for stage in reversed(self.chain(name, build_args)):
            for rest in stage.values("ENV"):
                merged.update(parse_assignments(rest))
        return merged

    def stage_args(self, name: str) -> dict[str, str]:
        """ARG defaults declared inside one stage."""
        return {key: value for rest in self.stage(name).values("ARG") for key, value in parse_assignments(rest).items()}


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def parse_assignments(rest: str) -> dict[str, str]:
    """``K=V K2="v 2"`` (ENV, ARG) to a dict; ``ARG NAME`` without a default maps to ''."""
    lexer = shlex.shlex(rest, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    out = {}
    for token in lexer:
        key, _, value = token.partition("=")
        out[key] = value
    return out


def logical_lines(text: str) -> list[str]:
    """Dockerfile lines with continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def dockerfile() -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(DOCKERFILE.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else f"stage-{len(stages)}"
            stages.append(Stage(name=name, base=parts[0]))
        elif not stages:
            if keyword == "ARG":
                global_args.update(parse_assignments(rest))
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(global_args=global_args, stages=stages)


# --- entrypoint --------------------------------------------------------------------------

def entrypoint_roles() -> dict[str, list[str]]:
    """role -> the command it execs (``"$@"`` dropped), from the entrypoint's ``case``."""
    roles: dict[str, list[str]] = {}
    role, body = None, []
    for raw in ENTRYPOINT.read_text().splitlines():
        line = raw.strip()
        head = re.fullmatch(r"([\w*|-]+)\)", line)
        if head and role is None:
            role, body = head.group(1), []
        elif role is not None and line == ";;":
            text = " ".join(part.rstrip("\\").strip() for part in body)
            execs = re.findall(r"\bexec\s+(.*)", text)
            if execs:
                roles[role] = [token for token in shlex.split(execs[-1]) if token not in ("$@", "$role")]
            role = None
        elif role is not None:
            body.append(line)
    return roles


def shell_default(token: str) -> str:
    """``${VAR:-default}`` -> ``default``; anything else unchanged."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", token)
    return match.group(1) if match else token


# --- compose ------------------------------------------------------------------------------

def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_app_services(spec: dict | None = None) -> dict[str, dict]:
    """The services that run the application image (they have a build of deploy/Dockerfile's app)."""
    spec = spec or compose()
    return {name: service for name, service in spec["services"].items()
            if service.get("build", {}).get("target", "runtime") != "proxy" and "build" in service}


def compose_environment(service: dict) -> dict[str, object]:
    """A service's environment (mapping or list form, env_file contents included)."""
    env: dict[str, object] = {}
    files = service.get("env_file") or []
    for entry in [files] if isinstance(files, (str, dict)) else files:
        path = entry if isinstance(entry, str) else entry["path"]
        for line in (COMPOSE.parent / path).read_text().splitlines():
            match = re.match(r"^([A-Za-z_]\w*)=(.*)$", line.strip())
            if match:
                env[match.group(1)] = match.group(2)
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    env.update(raw)
    return env


def compose_command(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


# --- Kubernetes -----------------------------------------------------------------------------

@dataclass
class Manifest:
    path: Path
    doc: dict

    @property
    def kind(self) -> str:
        return self.doc.get("kind", "?")

    @property
    def name(self) -> str:
        return self.doc.get("metadata", {}).get("name", "?")

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}: {self.kind}/{self.name}"


def kubernetes_files() -> list[Path]:
    return sorted(path for path in KUBERNETES.glob("*.y*ml") if path.name != "kustomization.yaml")


def manifests() -> list[Manifest]:
    return [Manifest(path, doc) for path in kubernetes_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())


def pod_spec(manifest: Manifest) -> dict | None:
    spec = manifest.doc.get("spec", {})
    if manifest.kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec.get("template", {}).get("spec")
    if manifest.kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return None


def containers(pod: dict, *, init: bool = True) -> list[dict]:
    return list(pod.get("containers", [])) + (list(pod.get("initContainers", [])) if init else [])


def image_name(image: str) -> str:
    """``registry/x/curation:cpu`` -> ``curation``."""
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]


def container_argv(container: dict) -> list[str] | None:
    """What a container runs: its command (replacing the image's entrypoint) or the entrypoint's
    arguments (args); None when it runs the image's defaults."""
    if container.get("command"):
        return [str(part) for part in container["command"]] + [str(part) for part in container.get("args", [])]
    if container.get("args"):
        return [str(part) for part in container["args"]]
    return None


def probes(container: dict) -> dict[str, dict]:
    return {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in container}
