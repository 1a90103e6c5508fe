"""docker-compose.yml: services, start order, health and persistence."""

from __future__ import annotations

import pytest

from tests.cli_parsing import parse_visionq
from tests.deploy.deployfiles import (
    DATA_DIRS,
    DEPENDS_ON_CONDITIONS,
    DOCKERFILE_PATH,
    LONG_RUNNING_RESTART,
    REQUIRED_DEPENDENCIES,
    ROOT,
    SERVICE_NAMES,
    compose,
    depends_on,
    environment,
    healthcheck_argv,
    mounts,
    named_volume_at,
    service,
    service_argv,
    services,
)

# --- the services ----------------------------------------------------------------------


def test_compose_file_has_only_known_top_level_keys() -> None:
    known = {"name", "services", "volumes", "networks", "configs", "secrets", "include"}
    extra = {key for key in compose() if key not in known and not key.startswith("x-")}
    assert not extra, f"unknown top-level keys: {extra}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_has_a_pinned_image_or_builds_the_dockerfile(name: str) -> None:
    spec = service(name)
    if "build" in spec:
        build = spec["build"]
        build = {"context": build} if isinstance(build, str) else build
        context = (ROOT / build.get("context", ".")).resolve()
        assert context == ROOT, f"{name} builds from {context}"
        assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE_PATH
        assert DOCKERFILE_PATH.is_file()
    else:
        image = spec.get("image", "")
        repository, _, tag = image.rpartition(":")
        assert repository and tag not in ("", "latest"), f"{name}: pin a tag, not {image!r}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_is_long_running_or_a_one_shot_others_wait_for(name: str) -> None:
    restart = service(name).get("restart", "no")
    if restart in LONG_RUNNING_RESTART:
        assert restart == "unless-stopped", f"{name}: `docker compose stop` should stick"
        assert healthcheck_argv(name), f"{name} runs for good but has no healthcheck"
        return
    assert restart == "no", f"{name}: restart {restart!r}"
    waiting = [
        other
        for other in services()
        if depends_on(other).get(name) == "service_completed_successfully"
    ]
    assert waiting, f"{name} runs once, but no service waits for it to complete"
    assert not service(name).get("ports"), f"one-shot {name} publishes ports"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_depends_on_existing_services_with_valid_conditions(name: str) -> None:
    profiled = bool(service(name).get("profiles"))
    for dependency, condition in depends_on(name).items():
        assert dependency in services(), f"{name} depends on unknown {dependency}"
        assert condition in DEPENDS_ON_CONDITIONS, f"{name}: condition {condition!r}"
        if condition == "service_healthy":
            assert healthcheck_argv(dependency), f"{name} waits for {dependency} to be healthy"
        if condition == "service_completed_successfully":
            assert service(dependency).get("restart", "no") == "no", f"{dependency} never exits"
        if not profiled:
            assert not service(dependency).get("profiles"), f"{dependency} is not always started"


@pytest.mark.parametrize(
    ("name", "required"),
    [pytest.param(name, required, id=name) for name, required in REQUIRED_DEPENDENCIES.items()],
)
def test_processes_start_after_what_they_need(name: str, required: dict[str, str]) -> None:
    assert depends_on(name).items() >= required.items()


def test_migrate_upgrades_the_schema_before_api_and_worker_start() -> None:
    assert parse_visionq(service_argv("migrate")).command_path == "visionq db upgrade"
    for name in ("api", "worker"):
        assert depends_on(name).get("migrate") == "service_completed_successfully"


def test_redis_persists_its_queue_with_aof() -> None:
    argv = service_argv("redis")
    assert argv[0] == "redis-server"
    assert "--appendonly" in argv, "without AOF a Redis restart loses queued jobs"
    assert argv[argv.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize(("name", "data_dir"), DATA_DIRS.items())
def test_stateful_services_keep_their_data_in_a_named_volume(name: str, data_dir: str) -> None:
    volume = named_volume_at(name, data_dir)
    assert volume, f"{name} keeps {data_dir} in the container: lost on `docker compose down`"
    assert volume in (compose().get("volumes") or {})


def test_infrastructure_healthchecks_use_their_credentials() -> None:
    assert healthcheck_argv("redis") == ["redis-cli", "ping"]
    postgres = environment("postgres")
    check = healthcheck_argv("postgres")
    assert check[0] == "pg_isready"
    assert check[check.index("-U") + 1] == postgres["POSTGRES_USER"]
    assert check[check.index("-d") + 1] == postgres.get("POSTGRES_DB", postgres["POSTGRES_USER"])


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_named_volumes_are_declared(name: str) -> None:
    declared = compose().get("volumes") or {}
    for source, target, _ in mounts(name):
        if named_volume_at(name, target):
            assert source in declared, f"{name} mounts undeclared volume {source}"


def test_emulator_is_opt_in() -> None:
    assert service("emulator").get("profiles") == ["emulator"]
    assert parse_visionq(service_argv("emulator")).command_path == "visionq emulator"
