import json
import re
from pathlib import Path

import pytest

from visionq.models.settings import get_settings, redact_url
from visionq.vision.catalogue import CatalogueError, check_default_model, load_catalogue


def test_defaults_put_everything_under_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "VISIONQ_DATABASE_URL",
        "VISIONQ_BLOB_DIR",
        "VISIONQ_DEFAULT_MODEL",
        "VISIONQ_MODELS_FILE",
        "VISIONQ_ALLOW_UNKNOWN_MODELS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path))
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'visionq.db'}"
    assert settings.blob_dir == str(tmp_path / "blobs")
    # Empty: the catalogue's default model (and its segmentation default for segment jobs).
    assert settings.default_model == ""
    assert settings.allow_unknown_models is False
    assert settings.models_file is None
    assert settings.catalogue_override() is None
    assert settings.gemini_base_url == ""


def test_models_file_overrides_the_catalogue(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    override = {"aliases": {"fast": "gemini-3.8-flash"}, "defaults": {"model": "gemini-3.6-flash"}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(override))
    monkeypatch.setenv("VISIONQ_MODELS_FILE", str(path))
    monkeypatch.setenv("VISIONQ_DEFAULT_MODEL", "gemini-3.8-flash")
    monkeypatch.setenv("VISIONQ_ALLOW_UNKNOWN_MODELS", "true")
    settings = get_settings()
    assert settings.models_file == path
    assert settings.catalogue_override() == override
    catalogue = load_catalogue(settings.catalogue_override())
    assert catalogue.aliases["fast"] == "gemini-3.8-flash"
    assert catalogue.defaults["model"] == "gemini-3.6-flash"
    check_default_model(catalogue, settings.default_model)
    assert settings.allow_unknown_models is True


def test_a_bad_models_file_says_which(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    monkeypatch.setenv("VISIONQ_MODELS_FILE", str(path))
    with pytest.raises(ValueError, match=f"cannot read {re.escape(str(path))}"):
        get_settings().catalogue_override()
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} must hold a JSON object"):
        get_settings().catalogue_override()
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"cannot read {re.escape(str(path))}"):
        get_settings().catalogue_override()


def test_a_retired_default_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old default, shut down on 2026-12-01: starting with it would route every job.
    monkeypatch.setenv("VISIONQ_DEFAULT_MODEL", "gemini-2.5-flash")
    with pytest.raises(CatalogueError, match=r"VISIONQ_DEFAULT_MODEL=gemini-2\.5-flash is routed"):
        check_default_model(load_catalogue(), get_settings().default_model)


def test_google_api_key_wins_over_gemini_api_key_like_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-secret")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-secret")
    assert get_settings().gemini_key() == "google-secret"
    monkeypatch.delenv("GOOGLE_API_KEY")
    assert get_settings().gemini_key() == "gemini-secret"


def test_secrets_never_appear_in_printable_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-secret")
    monkeypatch.setenv("VISIONQ_DATABASE_URL", "postgresql://app:hunter2@db/visionq")
    settings = get_settings()
    assert "gemini-secret" not in repr(settings)
    shown = str(settings.redacted())
    assert "gemini-secret" not in shown and "hunter2" not in shown
    assert settings.redacted()["gemini_api_key"] == "set"


def test_redact_url() -> None:
    assert redact_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("name", ["VISIONQ_TOKEN_RULES_FILE", "VISIONQ_PRICES_FILE"])
def test_a_replaced_setting_is_refused_naming_its_successor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    monkeypatch.setenv(name, str(tmp_path / "old.json"))
    with pytest.raises(ValueError, match=f"{name} is no longer read: use VISIONQ_MODELS_FILE"):
        get_settings()


@pytest.mark.parametrize("version", ["v1", "v2", ""])
def test_only_an_api_version_with_everything_visionq_sends_is_taken(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setenv("VISIONQ_GEMINI_API_VERSION", version)
    with pytest.raises(ValueError, match="v1 has no File API"):
        get_settings()


def test_page_size_max_is_at_least_the_clients_batch_of_100(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # VisionqClient.wait() sends 100 ids per GET /v1/jobs?ids=: a smaller maximum would
    # answer every such poll 422.
    monkeypatch.setenv("VISIONQ_PAGE_SIZE_MAX", "99")
    with pytest.raises(ValueError, match="page_size_max"):
        get_settings()
    monkeypatch.setenv("VISIONQ_PAGE_SIZE_MAX", "100")
    assert get_settings().page_size_max == 100
