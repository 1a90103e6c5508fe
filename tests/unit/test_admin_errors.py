"""Admin commands end with one line (the cause, the fix) and exit code 1, never a traceback:
an unmigrated database, an unreachable one, a malformed setting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from visionq.cli.main import main

# Every admin command that reads the settings and the database.
DATABASE_COMMANDS = [
    ["keys", "create", "me"],
    ["keys", "list"],
    ["keys", "revoke", "1"],
    ["cost", "report"],
    ["budgets", "show"],
    ["budgets", "set", "acme", "--daily", "1"],
    ["files", "list"],
    ["db", "current"],
    ["gc", "--dry-run"],
]
SETTINGS_COMMANDS = [*DATABASE_COMMANDS, ["db", "upgrade"], ["config"], ["models"]]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("VISIONQ_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("VISIONQ_DATA_DIR", str(tmp_path / "data"))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `visionq ARGV` as the console script does; (exit code, stdout + stderr)."""
    old = sys.argv
    sys.argv = ["visionq", *argv]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


def assert_one_line(output: str, *words: str) -> None:
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    for word in words:
        assert word in lines[0], output


@pytest.mark.parametrize("argv", DATABASE_COMMANDS, ids=" ".join)
def test_an_unmigrated_database_says_run_db_upgrade(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run(argv, capsys)
    if argv == ["db", "current"]:  # a fresh database is a fine answer here
        assert (code, output.strip()) == (0, "not migrated")
        return
    assert code == 1
    assert_one_line(output, "visionq db upgrade")
    assert "secret_hash" not in output and "INSERT" not in output


@pytest.mark.parametrize("argv", [*DATABASE_COMMANDS, ["db", "upgrade"]], ids=" ".join)
def test_an_unreachable_database_is_named_without_its_password(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISIONQ_DATABASE_URL", "postgresql://visionq:hunter2@127.0.0.1:1/visionq")
    code, output = run(argv, capsys)
    assert code == 1
    assert_one_line(output, "VISIONQ_DATABASE_URL", "127.0.0.1")
    assert "hunter2" not in output


@pytest.mark.parametrize("argv", SETTINGS_COMMANDS, ids=" ".join)
def test_a_malformed_setting_is_named(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VISIONQ_RATE_LIMITS", '{"m": {"rpm": 1}}}')
    code, output = run(argv, capsys)
    assert code == 1
    assert_one_line(output, "VISIONQ_RATE_LIMITS")


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("VISIONQ_MODELS_FILE", "/nonexistent/models.json", "/nonexistent/models.json"),
        ("VISIONQ_PRICES_FILE", "prices.json", "VISIONQ_MODELS_FILE"),
        ("VISIONQ_DATABASE_URL", "not a url", "VISIONQ_DATABASE_URL"),
        ("VISIONQ_DATABASE_URL", "sqlite:////proc/no-such-dir/visionq.db", "/proc/no-such-dir"),
        ("VISIONQ_BROKER_VISIBILITY_TIMEOUT_S", "10", "VISIONQ_BROKER_VISIBILITY_TIMEOUT_S"),
    ],
)
# gc --dry-run: a real gc takes its lock in Redis first (none runs here).
@pytest.mark.parametrize("argv", [["keys", "list"], ["models"], ["gc", "--dry-run"]], ids=" ".join)
def test_other_configuration_mistakes_are_one_line_too(
    argv: list[str],
    variable: str,
    value: str,
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from visionq.models.migrate import upgrade
    from visionq.models.settings import get_settings

    upgrade(get_settings().database_url)  # only the mistake below can fail the command
    monkeypatch.setenv(variable, value)
    code, output = run(argv, capsys)
    if code == 0:  # the command does not use this setting (models: no database)
        unused = {("models", "VISIONQ_DATABASE_URL"), ("keys", "VISIONQ_MODELS_FILE"),
                  ("gc", "VISIONQ_MODELS_FILE")}  # fmt: skip
        assert (argv[0], variable) in unused, output
        return
    assert code == 1
    assert_one_line(output, named)
