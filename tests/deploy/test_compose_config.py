"""docker-compose.yml configuration agrees with Settings; secrets stay out of the file."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy.engine import make_url

from tests.deploy.deployfiles import (
    BUILT_SERVICES,
    COMPOSE_PATH,
    OTHER_SHELL_VARIABLES,
    SECRET_VARIABLES,
    SERVICE_NAMES,
    compose,
    environment,
    image_variable_prefix,
    mounts,
    named_volume_at,
    referenced_variables,
    service,
    services,
    shared_environment,
)
from visionq.models.ratelimits import ModelQuota
from visionq.models.settings import Settings, get_settings

# --- configuration -------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_environment_has_only_variables_something_reads(name: str) -> None:
    prefix = image_variable_prefix(name)
    for key in environment(name):
        allowed = key.startswith("VISIONQ_") or key in SECRET_VARIABLES
        if prefix is not None:
            allowed = key.startswith(prefix)
        assert allowed, f"{name}: nothing reads {key}"


def test_interpolated_variables_are_known_and_optional() -> None:
    for variable, operator in referenced_variables(compose()):
        known = SECRET_VARIABLES | OTHER_SHELL_VARIABLES
        assert variable.startswith("VISIONQ_") or variable in known, variable
        assert operator in (":-", "-"), f"${{{variable}}} needs a default: compose warns if unset"


def test_secrets_come_from_the_environment_only() -> None:
    text = COMPOSE_PATH.read_text(encoding="utf-8")
    assert not re.search(r"AIza[\w-]{35}", text), "a Google API key is committed"
    for name in services():
        raw = service(name).get("environment") or {}
        for key in SECRET_VARIABLES & set(raw):
            assert re.fullmatch(rf"\$\{{{key}:?-\}}", str(raw[key])), f"{name}: {key} is set"


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_visionq_services_share_one_configuration(name: str) -> None:
    assert environment(name) == shared_environment()


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_settings_read_every_variable_the_service_sets(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = {"GEMINI_API_KEY": "key-from-dotenv"}  # as `docker compose` would read .env
    env = environment(name, shell)
    for key in list(os.environ):
        if key.startswith("VISIONQ_") or key in SECRET_VARIABLES:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = get_settings()
    for key, value in env.items():
        if not key.startswith("VISIONQ_"):
            continue
        field = key.removeprefix("VISIONQ_").lower()
        assert field in Settings.model_fields, f"{key} is no setting"
        assert Settings.model_fields[field].validation_alias is None, f"{key} is ignored"
        assert _same(getattr(settings, field), value), f"{key}={value!r} read differently"
    assert settings.gemini_key() == "key-from-dotenv"


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_json_values_from_the_shell_pass_through_unchanged(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ${VAR:-default} whose default holds "}" renders one "}" too many once VAR is set
    # (compose ends the expression at the first "}"): every service then failed on its settings.
    limits = '{"m": {"rpm": 1}}'
    shell = {variable: limits for variable, _ in referenced_variables(compose())}
    env = environment(name, shell)
    for variable in shell:
        assert env.get(variable, limits) == limits, f"${{{variable}}} renders {env[variable]!r}"
    for key in list(os.environ):
        if key.startswith("VISIONQ_") or key in SECRET_VARIABLES:
            monkeypatch.delenv(key)
    monkeypatch.setenv("VISIONQ_RATE_LIMITS", env["VISIONQ_RATE_LIMITS"])
    assert get_settings().rate_limits == {"m": ModelQuota(rpm=1, tpm=None)}


def _same(actual: object, raw: str) -> bool:
    if str(actual) == raw or (raw == "" and actual is None):  # empty: unset (a token)
        return True
    try:
        return bool(actual == type(actual)(raw))  # type: ignore[call-arg]
    except (TypeError, ValueError):
        return False


def test_database_url_matches_the_postgres_service() -> None:
    url = make_url(shared_environment()["VISIONQ_DATABASE_URL"])
    assert url.get_backend_name() == "postgresql"
    assert url.host in services(), f"no service {url.host}"
    assert service(url.host).get("image", "").startswith("postgres:")
    postgres = environment(url.host)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.database == postgres.get("POSTGRES_DB", postgres["POSTGRES_USER"])
    assert url.port in (None, 5432)


def test_redis_url_points_at_the_redis_service() -> None:
    url = urlsplit(shared_environment()["VISIONQ_REDIS_URL"])
    assert url.scheme == "redis"
    assert url.hostname in services(), f"no service {url.hostname}"
    assert service(url.hostname).get("image", "").startswith("redis:")
    assert url.port in (None, 6379)


def test_api_and_worker_share_the_blob_store() -> None:
    blob_dir = shared_environment()["VISIONQ_BLOB_DIR"]
    if "://" in blob_dir:  # an fsspec URL (s3://, gs://): shared without a volume
        return
    volumes = {name: named_volume_at(name, blob_dir) for name in ("api", "worker")}
    assert volumes["api"], f"api does not mount a named volume at {blob_dir}"
    assert volumes["api"] == volumes["worker"], f"api and worker see different blobs: {volumes}"
    for name in ("api", "worker"):
        read_only = [ro for _, target, ro in mounts(name) if target == blob_dir]
        assert read_only == [False], f"{name} mounts the blob store read-only"


# Settings an operator sets in .env (issue 23): compose must pass them on, or .env has no
# effect; unset, each renders visionq's own default.
PASSED_FROM_DOTENV = {
    "VISIONQ_FAIR_SHARE": ("false", False),
    "VISIONQ_TENANT_WEIGHTS": ('{"acme": 2, "beta": 1}', {"acme": 2.0, "beta": 1.0}),
    "VISIONQ_DEFAULT_PRIORITY": ("7", 7),
    "VISIONQ_RATE_LEARN": ("false", False),
    "VISIONQ_RATE_MARGIN_S": ("1.5", 1.5),
}


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_dotenv_settings_reach_the_services_with_visionq_defaults(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("VISIONQ_") or key in SECRET_VARIABLES:
            monkeypatch.delenv(key)
    unset = environment(name)
    for key in PASSED_FROM_DOTENV:
        assert key in unset, f"{name}: {key} in .env never reaches the container"
        monkeypatch.setenv(key, unset[key])
    defaults = get_settings()
    for key in PASSED_FROM_DOTENV:
        field = key.removeprefix("VISIONQ_").lower()
        assert getattr(defaults, field) == Settings.model_fields[field].get_default(
            call_default_factory=True
        ), f"{key} unset renders {unset[key]!r}, not visionq's default"
    shell = {key: raw for key, (raw, _) in PASSED_FROM_DOTENV.items()}
    rendered = environment(name, shell)
    for key, (raw, _) in PASSED_FROM_DOTENV.items():
        monkeypatch.setenv(key, rendered[key])
        assert rendered[key] == raw, f"{key}={raw!r} renders {rendered[key]!r}"
    settings = get_settings()
    for key, (_, value) in PASSED_FROM_DOTENV.items():
        assert getattr(settings, key.removeprefix("VISIONQ_").lower()) == value
