from pathlib import Path

import pytest

from models.settings import get_settings, redact_url


def test_defaults_put_everything_under_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("VISIONQ_DATABASE_URL", "VISIONQ_BLOB_DIR", "VISIONQ_DEFAULT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path))
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'visionq.db'}"
    assert settings.blob_dir == str(tmp_path / "blobs")
    assert settings.default_model == "gemini-2.5-flash"
    assert settings.gemini_base_url == ""


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
