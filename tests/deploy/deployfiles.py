"""docker-compose.yml, Dockerfile and .dockerignore as data, for the deploy tests."""

from __future__ import annotations

import functools
import json
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_parsing import parse_celery, parse_visionq

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_PATH = ROOT / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"
PYPROJECT_PATH = ROOT / "pyproject.toml"
# Exact versions CI and the image install (written by scripts/lock).
CONSTRAINTS_PATH = ROOT / "constraints.txt"

SHARED_ENV_KEY = "x-visionq-env"
# The only variables besides VISIONQ_* that visionq reads (same names as the google-genai SDK).
SECRET_VARIABLES = frozenset({"GEMINI_API_KEY", "GOOGLE_API_KEY"})
# Other images read their own variables (by prefix), set in the file or from the shell.
IMAGE_VARIABLE_PREFIXES = {"postgres": "POSTGRES_", "grafana/grafana": "GF_"}
# Shell variables (or .env) the file reads for images that are not visionq's.
OTHER_SHELL_VARIABLES = frozenset({"GRAFANA_ADMIN_PASSWORD"})
# The `monitoring` profile: Prometheus and Grafana with monitoring/ mounted.
MONITORING_SERVICES = ("prometheus", "grafana")
# Programs installed in the visionq image: the interpreter and the two console scripts.
IMAGE_PROGRAMS = frozenset({"python", "visionq", "celery"})
DEPENDS_ON_CONDITIONS = frozenset(
    {"service_started", "service_healthy", "service_completed_successfully"}
)
LONG_RUNNING_RESTART = frozenset({"unless-stopped", "always"})
ALL_INTERFACES = frozenset({"0.0.0.0", "::", ""})

# What each process needs before it starts (the brief of the production shape).
REQUIRED_DEPENDENCIES: dict[str, dict[str, str]] = {
    "migrate": {"postgres": "service_healthy"},
    "api": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
    "worker": {"migrate": "service_completed_successfully", "redis": "service_healthy"},
    "flower": {"redis": "service_healthy"},
}
# Where the stateful images keep their data (must be a named volume to survive `down`).
DATA_DIRS = {"redis": "/data", "postgres": "/var/lib/postgresql/data"}


# --- loading the files ---------------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    with COMPOSE_PATH.open(encoding="utf-8") as file:
        data = yaml.safe_load(file)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def service(name: str) -> dict[str, Any]:
    return services()[name]


def is_built_here(name: str) -> bool:
    """The service runs the visionq image built from ./Dockerfile."""
    return "build" in service(name)


def image_variable_prefix(name: str) -> str | None:
    """The prefix of the variables a service's (non-visionq) image reads, if any."""
    repository = service(name).get("image", "").rpartition(":")[0]
    return IMAGE_VARIABLE_PREFIXES.get(repository)


@functools.cache
def pyproject() -> dict[str, Any]:
    with PYPROJECT_PATH.open("rb") as file:
        return tomllib.load(file)


@functools.cache
def dockerfile() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE_PATH.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines even inside a continued instruction.
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return tuple(instructions)


def dockerfile_args(keyword: str) -> list[str]:
    return [arguments for found, arguments in dockerfile() if found == keyword]


def dockerfile_argv(keyword: str) -> list[str]:
    """The argv of the last CMD or ENTRYPOINT (exec or shell form); [] when absent."""
    values = dockerfile_args(keyword)
    if not values:
        return []
    value = values[-1]
    if value.startswith("["):
        parsed = json.loads(value)
        assert isinstance(parsed, list)
        return [str(item) for item in parsed]
    return shlex.split(value)


# --- compose semantics -----------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)


def interpolate(value: str, shell: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, $$ substitution."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        current = shell.get(name)
        if match["op"] == ":-":
            return current or match["arg"]
        if match["op"] == "-":
            return match["arg"] if current is None else current
        if match["op"] in (":?", "?") and not current:
            raise AssertionError(f"${{{name}}} is required: {match['arg']}")
        return current or ""

    return _VARIABLE.sub(replace, value)


def referenced_variables(node: object) -> list[tuple[str, str | None]]:
    """(name, operator) of every ${...} in the parsed file (anchors already merged)."""
    if isinstance(node, dict):
        return [found for value in node.values() for found in referenced_variables(value)]
    if isinstance(node, list):
        return [found for value in node for found in referenced_variables(value)]
    if isinstance(node, str):
        return [
            (match["name"] or match["bare"], match["op"])
            for match in _VARIABLE.finditer(node)
            if not match["escaped"]
        ]
    return []


def environment(name: str, shell: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's environment after interpolation with the given shell variables."""
    raw = service(name).get("environment") or {}
    if isinstance(raw, list):  # the ["KEY=value", ...] form
        raw = {key: value for key, _, value in (item.partition("=") for item in raw)}
    return {key: interpolate(str(value), shell or {}) for key, value in raw.items()}


def shared_environment(shell: Mapping[str, str] | None = None) -> dict[str, str]:
    raw = compose().get(SHARED_ENV_KEY)
    assert isinstance(raw, dict), f"no {SHARED_ENV_KEY} mapping at the top level"
    return {key: interpolate(str(value), shell or {}) for key, value in raw.items()}


def as_argv(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    assert isinstance(value, list), f"not a command: {value!r}"
    return [str(item) for item in value]


def service_argv(name: str) -> list[str]:
    """What the container runs: entrypoint + command, else the image's defaults."""
    spec = service(name)
    entrypoint = as_argv(spec.get("entrypoint"))
    command = as_argv(spec.get("command"))
    if is_built_here(name):
        if "entrypoint" not in spec:
            entrypoint = dockerfile_argv("ENTRYPOINT")
        if "command" not in spec:
            command = dockerfile_argv("CMD")
    return [*entrypoint, *command]


def healthcheck_argv(name: str) -> list[str]:
    test = (service(name).get("healthcheck") or {}).get("test")
    if test is None:
        return []
    if isinstance(test, str):  # the string form is CMD-SHELL
        test = ["CMD-SHELL", test]
    kind, *rest = test
    assert kind in ("CMD", "CMD-SHELL", "NONE"), f"{name}: healthcheck test starts with {kind}"
    if kind == "CMD-SHELL":
        assert len(rest) == 1, f"{name}: CMD-SHELL takes one string"
        return shlex.split(interpolate(rest[0], {}))
    return [interpolate(item, {}) for item in rest]


def commented_commands() -> list[tuple[str, list[str]]]:
    """`docker compose run|exec [--flags] SERVICE CMD...` examples in the file's comments."""
    pattern = re.compile(r"#.*docker compose (?:run|exec)(?: --?[\w-]+)* ([\w-]+) (.+)$")
    found = []
    for line in COMPOSE_PATH.read_text(encoding="utf-8").splitlines():
        if match := pattern.search(line):
            found.append((match[1], shlex.split(match[2])))
    return found


def depends_on(name: str) -> dict[str, str]:
    """{dependency: condition}; the short list form means service_started."""
    raw = service(name).get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {dep: (spec or {}).get("condition", "service_started") for dep, spec in raw.items()}


def mounts(name: str) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of a service's volumes, short or long syntax."""
    found = []
    for volume in service(name).get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target, _, mode = rest.partition(":")
            found.append((source, target, "ro" in mode.split(",")))
        else:
            found.append(
                (volume.get("source", ""), volume["target"], bool(volume.get("read_only")))
            )
    return found


def named_volume_at(name: str, target: str) -> str | None:
    for source, mounted_at, _ in mounts(name):
        if mounted_at.rstrip("/") == target.rstrip("/") and not source.startswith((".", "/", "~")):
            return source
    return None


def container_ports(name: str) -> list[int]:
    found = []
    for port in service(name).get("ports") or []:
        if isinstance(port, dict):
            found.append(int(port["target"]))
        else:
            found.append(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return found


def root_params(ctx: Any) -> dict[str, Any]:
    params = ctx.find_root().params
    assert isinstance(params, dict)
    return params


def flower_options(tornado_argv: Sequence[str]) -> dict[str, Any]:
    """Flower's own parser (tornado.options) on its arguments: unknown names, bad values
    and stray words fail here, while flower itself silently ignores unknown options."""
    from flower.options import options

    names = [arg.lstrip("-").partition("=")[0] for arg in tornado_argv]
    unknown = [name for name in names if name not in options]
    assert not unknown, f"not flower options: {unknown}"
    saved = {name: getattr(options, name) for name in names}
    try:
        leftover = options.parse_command_line(["flower", *tornado_argv], final=False)
        assert not leftover, f"flower ignores {leftover}"
        return {name.replace("-", "_"): getattr(options, name) for name in names}
    finally:
        for name, value in saved.items():
            setattr(options, name, value)


def http_paths(app: Any) -> set[str]:
    """The paths a FastAPI app serves (from its OpenAPI schema: routers are mounted lazily)."""
    return set(app.openapi()["paths"])


def listen_address(argv: Sequence[str]) -> tuple[str, int, set[str]]:
    """(host, port, HTTP routes) of the server a command starts."""
    if argv[0] == "visionq":
        ctx = parse_visionq(argv)
        if ctx.command_path == "visionq api":
            from visionq.api.app import create_app

            routes = http_paths(create_app())
        elif ctx.command_path == "visionq emulator":
            from visionq.emulator.app import create_app as create_emulator
            from visionq.emulator.config import EmulatorConfig

            routes = http_paths(create_emulator(EmulatorConfig()))
        else:
            pytest.fail(f"{ctx.command_path} serves no HTTP")
        return ctx.params["host"], ctx.params["port"], routes
    ctx = parse_celery(argv)
    assert ctx.command_path == "celery flower", f"{ctx.command_path} serves no HTTP"
    from flower.urls import handlers

    options = flower_options(ctx.params["tornado_argv"])
    routes = {h.regex.pattern if hasattr(h, "regex") else h[0] for h in handlers}
    return options.get("address", ""), options.get("port", 5555), routes


# --- the commands found in the files, collected once for parametrize -------------------


def all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for name in services():
        if argv := service_argv(name):
            found.append((f"{name}.command", argv))
        if argv := healthcheck_argv(name):
            found.append((f"{name}.healthcheck", argv))
    for index, (_, argv) in enumerate(commented_commands()):
        found.append((f"comment-{index}", argv))
    found.append(("Dockerfile", [*dockerfile_argv("ENTRYPOINT"), *dockerfile_argv("CMD")]))
    return found


SERVICE_NAMES = sorted(services())
BUILT_SERVICES = [name for name in SERVICE_NAMES if is_built_here(name)]
COMMANDS = all_commands()


def commands_of(program: str) -> list[Any]:
    return [pytest.param(argv, id=label) for label, argv in COMMANDS if argv[:1] == [program]]
