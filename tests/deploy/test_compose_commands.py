"""Every command in docker-compose.yml and the Dockerfile is real and valid (parsed, never run)."""

from __future__ import annotations

import re

import pytest

from tests.cli_parsing import is_group, parse_celery, parse_visionq
from tests.deploy.deployfiles import (
    ALL_INTERFACES,
    BUILT_SERVICES,
    IMAGE_PROGRAMS,
    commands_of,
    commented_commands,
    container_ports,
    flower_options,
    healthcheck_argv,
    listen_address,
    root_params,
    service,
    service_argv,
    services,
)
from visionq.api.queue import PROCESS_JOB

# --- commands ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_visionq_image_runs_only_programs_it_has(name: str) -> None:
    for argv in (service_argv(name), healthcheck_argv(name)):
        assert not argv or argv[0] in IMAGE_PROGRAMS, f"{name}: no {argv[0]} in the image"


@pytest.mark.parametrize("argv", commands_of("visionq"))
def test_visionq_commands_exist_with_valid_options(argv: list[str]) -> None:
    ctx = parse_visionq(argv)
    assert not is_group(ctx.command), f"{ctx.command_path} needs a subcommand"


@pytest.mark.parametrize("argv", commands_of("celery"))
def test_celery_commands_parse_and_load_the_visionq_app(argv: list[str]) -> None:
    from celery import Celery
    from celery.app.utils import find_app

    import visionq.worker.tasks  # registers the tasks, as the app's `include` does in a worker
    from visionq.worker.celery_app import app as visionq_app

    ctx = parse_celery(argv)
    if ctx.command_path == "celery flower":
        flower_options(ctx.params["tornado_argv"])
    if ctx.command_path in ("celery inspect", "celery control"):
        from celery.worker.control import Panel  # the remote commands workers answer

        method = ctx.params["command"]
        assert method in Panel.meta, f"workers have no remote command {method!r}"
        assert Panel.meta[method].type == ctx.info_name, f"{method} is no {ctx.info_name}"
    app_name = root_params(ctx)["app"]
    assert app_name, "celery without --app runs the default app, not visionq's"
    found = find_app(app_name)  # how celery itself resolves --app
    assert isinstance(found, Celery)
    assert found is visionq_app
    assert visionq.worker.tasks.process_job.name == PROCESS_JOB
    assert PROCESS_JOB in found.tasks


@pytest.mark.parametrize("argv", commands_of("python"))
def test_python_healthchecks_compile_and_probe_a_real_route(argv: list[str]) -> None:
    assert argv[1] == "-c"
    compile(argv[2], "<healthcheck>", "exec")
    assert re.search(r"https?://127\.0\.0\.1:\d+/", argv[2]), "probe the container itself"


# Services of other images (monitoring) are checked in test_compose_services.py.
@pytest.mark.parametrize("name", [name for name in BUILT_SERVICES if service(name).get("ports")])
def test_published_ports_are_where_the_server_listens(name: str) -> None:
    host, port, routes = listen_address(service_argv(name))
    assert host in ALL_INTERFACES, f"{name} listens on {host}: unreachable from outside"
    assert container_ports(name) == [port]
    check = " ".join(healthcheck_argv(name))
    if match := re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", check):
        assert int(match[1]) == port, f"{name}: healthcheck probes another port"
        path = match[2]
        assert any(route == path or re.fullmatch(route, path) for route in routes), path


def test_commented_examples_name_real_services() -> None:
    for name, _ in commented_commands():
        assert name in services()
