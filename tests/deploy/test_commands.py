"""Every command the deploy files run in the service's image names things that exist: the
Celery app and subcommand (``celery -A workers ...``), the WSGI module (``gunicorn api.wsgi``),
the management command (``python manage.py migrate``), the queues the plans use; every
role given to the entrypoint is one it has; every health probe pings the worker it runs in."""
from __future__ import annotations

import ast
import importlib
import re
import shlex

import pytest

from tests.deploy.deployfiles import (APP_IMAGES, COMPOSE, ENTRYPOINT, ROOT, compose, compose_app_services,
                                      compose_command, container_argv, containers, dockerfile, entrypoint_roles,
                                      image_name, manifests, pod_spec, probes, shell_default)

SHELL_KEYWORDS = {"until", "while", "do", "done", "if", "then", "else", "fi", "!"}
SHELL_UTILITIES = {"echo", "sleep", "exit", "true", "false", "test", "["}


def plan_queues(gpu_workers: bool = True) -> set[str]:
    """The queues the job plans send units to (curation/plans.py, as :func:`curation.plans.route`
    routes them for ``GPU_WORKERS``) and the app's default queue."""
    from api.core.queue import app
    from curation.plans import route
    from curation.steps import Stage

    tree = ast.parse((ROOT / "curation" / "plans.py").read_text())
    queues = {node.value for call in ast.walk(tree) if isinstance(call, ast.Call)
              for keyword in call.keywords if keyword.arg == "queue"
              for node in ast.walk(keyword.value) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    routed = route([Stage(q, 1, print, queue=q) for q in sorted(queues)], gpu_workers=gpu_workers)
    return {stage.queue for stage in routed} | {app.conf.task_default_queue}


def gpu_workers(value: str) -> bool:
    """``GPU_WORKERS`` as the settings read it."""
    return shell_default(str(value)).strip().lower() in ("1", "true", "yes", "on")


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a ``sh -c`` script (redirections, operators and keywords dropped)."""
    script = re.sub(r"\d*>&\d+|\d*>>?\s*\S+", " ", script)
    commands = []
    for segment in re.split(r";|&&|\|\||\||\n", script):
        argv = shlex.split(segment)
        while argv and argv[0] in SHELL_KEYWORDS:
            argv = argv[1:]
        if argv:
            commands.append(argv)
    return commands


def expand(argv: list[str], *, through_entrypoint: bool) -> list[list[str]]:
    """The simple commands ``argv`` runs: a role of the entrypoint becomes its command (when the
    image's entrypoint receives ``argv``), ``sh -c`` its script's commands."""
    roles = entrypoint_roles()
    if through_entrypoint and argv and argv[0] in roles:
        argv = roles[argv[0]] + argv[1:]
    if len(argv) >= 3 and argv[0] in ("sh", "/bin/sh", "bash") and argv[1] == "-c":
        return [cmd for script_cmd in simple_commands(argv[2]) for cmd in expand(script_cmd, through_entrypoint=False)]
    return [argv]


def option(argv: list[str], *names: str) -> str | None:
    for index, token in enumerate(argv):
        for name in names:
            if token == name and index + 1 < len(argv):
                return argv[index + 1]
            if name.startswith("--") and token.startswith(name + "="):
                return token.split("=", 1)[1]
    return None


def check_celery(argv: list[str]) -> list[str]:
    from celery import Celery
    from celery.bin.celery import celery as celery_cli

    app_name = option(argv, "-A", "--app")
    if app_name is None:
        return [f"{shlex.join(argv)!r} names no app (-A)"]
    problems = []
    try:
        module = importlib.import_module(app_name.split(":")[0])
        app = getattr(module, app_name.split(":")[1] if ":" in app_name else "app", None)
        if not isinstance(app, Celery):
            problems.append(f"{shlex.join(argv)!r}: module {app_name} has no Celery app")
    except ImportError as exc:
        problems.append(f"{shlex.join(argv)!r}: cannot import {app_name}: {exc}")
    rest = argv[argv.index(app_name) + 1:]
    subcommand = rest[0] if rest else None
    if subcommand not in celery_cli.commands:
        problems.append(f"{shlex.join(argv)!r}: celery has no subcommand {subcommand!r}")
    if subcommand == "worker":
        queues = shell_default(option(argv, "-Q", "--queues") or "")
        unknown = set(filter(None, queues.split(","))) - plan_queues()
        if not queues or unknown:
            problems.append(f"{shlex.join(argv)!r}: queues {queues!r} are not among the plans' {sorted(plan_queues())}")
    return problems


def check_gunicorn(argv: list[str]) -> list[str]:
    targets = [token for token in argv[1:] if not token.startswith("-") and re.fullmatch(r"[\w.]+(:\w+)?", token)]
    if not targets:
        return [f"{shlex.join(argv)!r} names no WSGI module"]
    module_name, _, attribute = targets[0].partition(":")
    try:
        application = getattr(importlib.import_module(module_name), attribute or "application", None)
    except ImportError as exc:
        return [f"{shlex.join(argv)!r}: cannot import {module_name}: {exc}"]
    return [] if callable(application) else [f"{shlex.join(argv)!r}: {module_name} has no WSGI application"]


def check_python(argv: list[str]) -> list[str]:
    from django.core.management import get_commands

    if len(argv) >= 2 and argv[1] == "manage.py":
        if not (ROOT / "manage.py").is_file():
            return ["manage.py is missing from the repository root"]
        name = argv[2] if len(argv) > 2 else None
        return [] if name in get_commands() else [f"{shlex.join(argv)!r}: no management command {name!r}"]
    if len(argv) >= 3 and argv[1] == "-c":
        try:
            compile(argv[2], "<python -c>", "exec")
        except SyntaxError as exc:
            return [f"{shlex.join(argv)!r}: {exc}"]
        return []
    if len(argv) >= 3 and argv[1] == "-m":
        return [] if importlib.util.find_spec(argv[2]) else [f"{shlex.join(argv)!r}: no module {argv[2]}"]
    return [f"{shlex.join(argv)!r}: not a form this test knows (manage.py, -c, -m)"]


def check(argv: list[str], *, through_entrypoint: bool) -> list[str]:
    roles = entrypoint_roles()
    if through_entrypoint and argv and argv[0] not in roles and "*" not in roles:
        return [f"{argv[0]!r} is not a role of deploy/docker-entrypoint.sh (roles: {sorted(roles)})"]
    problems = []
    for command in expand(argv, through_entrypoint=through_entrypoint):
        program = command[0].rsplit("/", 1)[-1]
        if program == "celery":
            problems += check_celery(command)
        elif program == "gunicorn":
            problems += check_gunicorn(command)
        elif program in ("python", "python3"):
            problems += check_python(command)
        elif program not in SHELL_UTILITIES:
            problems.append(f"{shlex.join(command)!r}: {program} is not a command of the service's image this test knows")
    return problems


def commands_in_files() -> list[tuple[str, list[str], bool]]:
    """``(where, argv, through the entrypoint?)`` for every command run in the service's image."""
    found = [(f"deploy/docker-entrypoint.sh role {role}", [role], True) for role in entrypoint_roles() if role != "*"]
    image = dockerfile()
    for rest in image.stage("runtime").values("CMD") or image.stage("app").values("CMD"):
        found.append(("deploy/Dockerfile CMD", [str(part) for part in ast.literal_eval(rest)], True))
    for stage in image.stages:
        for run in stage.values("RUN"):
            for match in re.finditer(r"python manage\.py \S+", run):
                found.append((f"deploy/Dockerfile stage {stage.name} RUN", shlex.split(match.group(0)), False))
    for name, service in compose_app_services().items():
        where = f"{COMPOSE.relative_to(ROOT)} service {name}"
        if service.get("entrypoint"):
            found.append((f"{where} entrypoint", [str(p) for p in service["entrypoint"]] + compose_command(service),
                          False))
        elif compose_command(service):
            found.append((f"{where} command", compose_command(service), True))
        test = (service.get("healthcheck") or {}).get("test")
        if test and test[0] == "CMD":
            found.append((f"{where} healthcheck", [str(p) for p in test[1:]], False))
        elif test and test[0] == "CMD-SHELL":
            found.append((f"{where} healthcheck", ["sh", "-c", test[1].replace("$$", "$")], False))
    for manifest in manifests():
        pod = pod_spec(manifest)
        for container in containers(pod) if pod else []:
            if image_name(container["image"]) not in APP_IMAGES:
                continue
            where = f"{manifest} container {container['name']}"
            argv = container_argv(container)
            if argv is not None:
                found.append((where, argv, not container.get("command")))
            for kind, probe in probes(container).items():
                if "exec" in probe:
                    found.append((f"{where} {kind}", [str(p) for p in probe["exec"]["command"]], False))
    return found


def test_the_files_run_commands():
    """The collection below is not empty: every file's commands are seen."""
    wheres = " ".join(where for where, _, _ in commands_in_files())
    for expected in ("docker-entrypoint.sh role web", "Dockerfile CMD", "compose.yaml service worker-cpu command",
                     "compose.yaml service web healthcheck", "web.yaml: Deployment/curation-web container web",
                     "livenessProbe", "migrate-job.yaml"):
        assert expected in wheres, f"no command found at {expected!r}; found: {wheres}"


@pytest.mark.parametrize("where, argv, through_entrypoint", commands_in_files(),
                         ids=[where for where, _, _ in commands_in_files()])
def test_command_names_what_exists(where, argv, through_entrypoint):
    problems = check(argv, through_entrypoint=through_entrypoint)
    assert not problems, f"{where} runs {shlex.join(argv)!r}:\n  " + "\n  ".join(problems)


def test_the_entrypoint_has_every_role():
    roles = entrypoint_roles()
    expected = {"web": ["gunicorn", "api.wsgi"], "worker-cpu": ["celery", "-A", "workers", "worker"],
                "worker-gpu": ["celery", "-A", "workers", "worker", "-Q", "gpu"], "beat": ["celery", "-A", "workers", "beat"],
                "migrate": ["python", "manage.py", "migrate"]}
    for role, prefix in expected.items():
        assert role in roles, f"{ENTRYPOINT.relative_to(ROOT)} has no role {role!r} (roles: {sorted(roles)})"
        assert roles[role][:len(prefix)] == prefix, f"role {role} runs {roles[role]}, expected {shlex.join(prefix)} ..."
    assert option(roles["worker-gpu"], "--concurrency", "-c") == "1", "the GPU worker must run one process per GPU"
    assert "*" in roles, "the entrypoint must run any other command as given (manage.py create_tenant ...)"


def test_the_checks_catch_mistakes():
    """The checks above fail on a wrong module, subcommand, queue, role or management command."""
    assert check(["celery", "-A", "wrokers", "worker", "-Q", "cpu"], through_entrypoint=False)
    assert check(["celery", "-A", "workers", "wroker"], through_entrypoint=False)
    assert check(["celery", "-A", "workers", "worker", "-Q", "cpu,fast"], through_entrypoint=False)
    assert check(["gunicorn", "api.wsgii"], through_entrypoint=False)
    assert check(["python", "manage.py", "migrat"], through_entrypoint=False)
    assert check(["worker-tpu"], through_entrypoint=False)
    assert not check(["sh", "-c", "until python manage.py migrate --check >/dev/null 2>&1; do sleep 5; done"],
                     through_entrypoint=False)


def worker_hostnames() -> dict[str, str]:
    """role -> the node-name prefix its worker runs under (``cpu`` for ``--hostname cpu@%h``)."""
    roles = entrypoint_roles()
    names = {}
    for role, argv in roles.items():
        if argv[:1] == ["celery"] and "worker" in argv:
            hostname = option(argv, "--hostname", "-n") or "celery@%h"
            names[role] = hostname.split("@")[0]
    return names


def ping_destinations(argvs: list[list[str]]) -> list[str]:
    found = []
    for argv in argvs:
        for command in expand(argv, through_entrypoint=False):
            if command[:1] == ["celery"] and "ping" in command:
                destination = option(command, "--destination", "-d")
                found.append(destination.split("@")[0] if destination else "")
    return found


def test_worker_probes_ping_their_own_worker():
    hostnames = worker_hostnames()
    assert set(hostnames) >= {"worker-cpu", "worker-gpu"}, hostnames
    checked = 0
    for name, service in compose_app_services().items():
        role = (compose_command(service) or [None])[0]
        if role not in hostnames:
            continue
        test = (service.get("healthcheck") or {}).get("test") or []
        argv = ["sh", "-c", test[1].replace("$$", "$")] if test[:1] == ["CMD-SHELL"] else test[1:]
        destinations = ping_destinations([argv])
        assert destinations == [hostnames[role]], (
            f"compose service {name} (role {role}, node {hostnames[role]}@...) pings {destinations}")
        checked += 1
    for manifest in manifests():
        pod = pod_spec(manifest)
        for container in containers(pod, init=False) if pod else []:
            role = (container.get("args") or [None])[0]
            if role not in hostnames:
                continue
            for kind, probe in probes(container).items():
                destinations = ping_destinations([probe.get("exec", {}).get("command", [])])
                assert destinations == [hostnames[role]], (
                    f"{manifest} container {container['name']} {kind} pings {destinations}, "
                    f"its worker is {hostnames[role]}@<hostname>")
                checked += 1
    assert checked >= 5, f"only {checked} worker health checks found"


def worker_queues(argv: list[str], env: dict) -> set[str]:
    """The queues a container consumes when the entrypoint gets ``argv`` with environment ``env``
    (a ``-Q ${NAME:-default}`` reads the variable); empty if it runs no worker."""
    roles = entrypoint_roles()
    if argv[:1] and argv[0] in roles:
        argv = roles[argv[0]] + argv[1:]
    if argv[:1] != ["celery"] or "worker" not in argv:
        return set()
    queues = option(argv, "-Q", "--queues") or ""
    variable = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", queues)
    if variable:
        queues = shell_default(str(env.get(variable.group(1)) or variable.group(2)))
    return set(queues.split(","))


def test_compose_without_profiles_serves_every_queue():
    """A CPU-only ``docker compose up`` (no gpu profile, ``GPU_WORKERS`` at its default) must
    consume every queue the plans use, or embedding units wait forever."""
    services = {name: s for name, s in compose_app_services().items() if not s.get("profiles")}
    flags = {gpu_workers(s.get("environment", {}).get("GPU_WORKERS", "false")) for s in services.values()}
    assert flags == {False}, f"without the gpu profile GPU_WORKERS must default to false everywhere: {flags}"
    consumed = set().union(*(worker_queues(compose_command(service), service.get("environment", {}))
                             for service in services.values()))
    assert consumed >= plan_queues(False), (
        f"without the gpu profile the compose workers consume {sorted(consumed)}, the plans use "
        f"{sorted(plan_queues(False))}")


def test_kubernetes_workers_serve_every_queue():
    consumed = set()
    for manifest in manifests():
        pod = pod_spec(manifest)
        for container in containers(pod, init=False) if pod else []:
            if not container.get("command"):
                env = {item["name"]: item.get("value", "") for item in container.get("env", [])}
                consumed |= worker_queues(container_argv(container) or [], env)
    configmap = next(m for m in manifests() if m.kind == "ConfigMap")
    wanted = plan_queues(gpu_workers(configmap.doc["data"].get("GPU_WORKERS", "false")))
    assert consumed >= wanted, f"the Kubernetes workers consume {sorted(consumed)}, the plans use {sorted(wanted)}"
