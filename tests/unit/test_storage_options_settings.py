"""VISIONQ_BLOB_STORAGE_OPTIONS: parsed with a message that says what to write, and its
credentials never printed by `visionq config` (code review issue 23, findings 7 and 18)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visionq.cli.main import app
from visionq.models.settings import Settings, get_settings

OPTIONS = {
    "endpoint_url": "http://minio:9000",
    "key": "AKIA123",
    "secret": "s3cr3t",
    "client_kwargs": {"region_name": "eu-west-1", "aws_session_token": "sess-tok"},
    "config_kwargs": {"proxies": [{"Password": "pw-in-list"}]},
    "token": "gcs-token",
}
SECRETS = ("AKIA123", "s3cr3t", "sess-tok", "pw-in-list", "gcs-token")


def test_redacted_hides_every_credential_of_the_storage_options() -> None:
    shown = Settings(blob_storage_options=OPTIONS).redacted()["blob_storage_options"]
    text = json.dumps(shown)
    assert not [secret for secret in SECRETS if secret in text]
    assert isinstance(shown, dict)
    assert shown["endpoint_url"] == "http://minio:9000"
    assert shown["key"] == shown["secret"] == shown["token"] == "set"
    assert shown["client_kwargs"] == {"region_name": "eu-west-1", "aws_session_token": "set"}


def test_repr_of_the_settings_shows_no_storage_credentials() -> None:
    # A Settings object logged or shown in a traceback must not print the credentials.
    settings = Settings(blob_storage_options=OPTIONS)
    assert not [secret for secret in SECRETS if secret in repr(settings) + str(settings)]


def test_an_endpoint_with_a_password_is_shown_without_it() -> None:
    settings = Settings(blob_storage_options={"endpoint_url": "http://user:hunter2@minio:9000"})
    assert "hunter2" not in json.dumps(settings.redacted())


def test_visionq_config_prints_no_storage_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONQ_BLOB_STORAGE_OPTIONS", json.dumps(OPTIONS))
    assert get_settings().blob_storage_options["secret"] == "s3cr3t"  # the store still gets it
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert not [secret for secret in SECRETS if secret in result.output]
    shown = json.loads(result.output)["blob_storage_options"]
    assert shown["endpoint_url"] == "http://minio:9000" and shown["key"] == "set"


@pytest.mark.parametrize("raw", ["[1]", '"x"', "3", "null", "{not json"])
def test_storage_options_that_are_not_an_object_get_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("VISIONQ_BLOB_STORAGE_OPTIONS", raw)
    with pytest.raises(ValueError, match="VISIONQ_BLOB_STORAGE_OPTIONS must be a JSON object"):
        get_settings()


@pytest.mark.parametrize("raw", ["", "  ", "{}"])
def test_empty_storage_options_are_none(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("VISIONQ_BLOB_STORAGE_OPTIONS", raw)
    assert get_settings().blob_storage_options == {}
