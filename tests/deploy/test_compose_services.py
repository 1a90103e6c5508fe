"""docker-compose.yml: services, start order, health and persistence."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.cli_parsing import parse_visionq
from tests.deploy.deployfiles import (
    DATA_DIRS,
    DEPENDS_ON_CONDITIONS,
    DOCKERFILE_PATH,
    LONG_RUNNING_RESTART,
    MONITORING_SERVICES,
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
    shared_environment,
)
from visionq.models.settings import Settings

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


# --- the monitoring profile ----------------------------------------------------------------


@pytest.mark.parametrize("name", MONITORING_SERVICES)
def test_monitoring_is_opt_in_and_published_on_loopback_only(name: str) -> None:
    spec = service(name)
    assert spec.get("profiles") == ["monitoring"], f"{name} should start only with the profile"
    assert "build" not in spec, f"{name} runs its own pinned image"
    (published,) = spec["ports"]
    host, _, ports = str(published).partition(":")
    assert host == "127.0.0.1", f"{name} has no authentication: publish it on loopback only"
    inside = ports.rpartition(":")[2]
    check = " ".join(healthcheck_argv(name))
    assert f"http://127.0.0.1:{inside}/" in check, f"{name}: healthcheck probes another port"


@pytest.mark.parametrize("name", MONITORING_SERVICES)
def test_monitoring_mounts_the_repository_files(name: str) -> None:
    binds = [(source, ro) for source, _, ro in mounts(name) if source.startswith("./")]
    assert binds, f"{name} mounts nothing from monitoring/"
    for source, read_only in binds:
        assert (ROOT / source).is_dir(), f"{name} mounts missing {source}"
        assert read_only, f"{name} may write to the repository's {source}"


def _prometheus_config() -> dict[str, Any]:
    argv = service_argv("prometheus")
    (flag,) = [arg for arg in argv if arg.startswith("--config.file=")]
    inside = flag.partition("=")[2]
    for source, target, _ in mounts("prometheus"):
        if inside.startswith(target.rstrip("/") + "/"):
            path = ROOT / source / inside[len(target.rstrip("/")) + 1 :]
            assert path.is_file(), f"--config.file {inside} is {path}: missing"
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            assert isinstance(data, dict)
            for rules in data.get("rule_files", []):
                assert (path.parent / rules).is_file(), f"rule file {rules} missing"
            return data
    pytest.fail(f"--config.file {inside} is not in a mounted folder")


def test_prometheus_keeps_its_data_in_a_named_volume() -> None:
    argv = service_argv("prometheus")
    (flag,) = [arg for arg in argv if arg.startswith("--storage.tsdb.path=")]
    assert named_volume_at("prometheus", flag.partition("=")[2]), "time series lost on `down`"


def test_prometheus_scrapes_the_api_and_every_worker_where_they_listen() -> None:
    jobs = {job["job_name"]: job for job in _prometheus_config()["scrape_configs"]}
    api_argv = service_argv("api")
    (api_target,) = jobs["visionq-api"]["static_configs"][0]["targets"]
    host, _, port = api_target.partition(":")
    assert host == "api" and host in services()
    assert port == api_argv[api_argv.index("--port") + 1]
    assert jobs["visionq-api"].get("metrics_path", "/metrics") == "/metrics"
    (dns,) = jobs["visionq-worker"]["dns_sd_configs"]
    assert dns["names"] == ["worker"] and dns["type"] == "A"
    assert "worker" in services()
    port_setting = shared_environment().get("VISIONQ_WORKER_METRICS_PORT")
    assert port_setting is not None, "the worker's metrics port is Settings' default, unseen here"
    assert int(port_setting) == dns["port"] == Settings().worker_metrics_port
    assert str(dns["port"]) in [str(port) for port in service("worker").get("expose", [])]


def test_api_serves_metrics_where_prometheus_scrapes() -> None:
    from starlette.routing import Match

    from visionq.api.app import create_app

    path = _prometheus_config()["scrape_configs"][0].get("metrics_path", "/metrics")
    # Routers are mounted lazily and /metrics is outside the OpenAPI document: ask the
    # routes themselves whether one serves GET at the path.
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    assert any(route.matches(scope)[0] == Match.FULL for route in create_app().routes)


def test_grafana_waits_for_prometheus_and_its_password_comes_from_the_shell() -> None:
    assert depends_on("grafana") == {"prometheus": "service_healthy"}
    raw = service("grafana").get("environment") or {}
    assert raw.get("GF_SECURITY_ADMIN_PASSWORD") == "${GRAFANA_ADMIN_PASSWORD:-}"
