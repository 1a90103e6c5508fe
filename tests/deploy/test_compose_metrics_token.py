"""VISIONQ_METRICS_TOKEN end to end in compose: from the shell or .env to the api and every
worker (which then want it), and to the prometheus service, whose entrypoint writes it where
both scrape jobs of prometheus.yml read it (review bug 2: the api never got it, so a token
in .env left /metrics open on the published port)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.deploy.deployfiles import (
    BUILT_SERVICES,
    ROOT,
    environment,
    mounts,
    service,
    service_argv,
)
from tests.monitoring.promconfig import COMPOSE_TOKEN_FILE, ENTRYPOINT, PROMETHEUS_CONFIG
from visionq.models.settings import Settings

TOKEN = "VISIONQ_METRICS_TOKEN"
SHELL = {TOKEN: "s3cret-token"}


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_every_visionq_service_gets_the_token_from_the_shell(name: str) -> None:
    assert environment(name, SHELL).get(TOKEN) == "s3cret-token", f"{name} never sees it"
    # Unset in the shell: empty, which Settings reads as no token (open), not "".
    unset = environment(name, {}).get(TOKEN)
    assert unset == "" and Settings(metrics_token=unset).metrics_token_value() is None


def test_prometheus_gets_the_token_and_writes_it_where_both_jobs_read_it() -> None:
    assert environment("prometheus", SHELL).get(TOKEN) == "s3cret-token"
    argv = service_argv("prometheus")
    assert argv[0] == "/bin/sh", "the image's busybox shell runs the entrypoint"
    script = PurePosixPath(argv[1])
    for source, target, read_only in mounts("prometheus"):
        if script.is_relative_to(target):
            assert read_only
            assert ROOT / source / script.relative_to(target) == ENTRYPOINT
            break
    else:
        pytest.fail(f"{script} is not in a folder mounted into the prometheus container")
    tmpfs = [str(entry).partition(":")[0] for entry in service("prometheus").get("tmpfs", [])]
    assert str(PurePosixPath(COMPOSE_TOKEN_FILE).parent) in tmpfs, "the token lands on disk"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    for job in config["scrape_configs"]:
        assert job["authorization"] == {"credentials_file": COMPOSE_TOKEN_FILE}, job["job_name"]


def _run_entrypoint(tmp_path: Path, token: str | None) -> tuple[str, list[str], Path]:
    """entrypoint.sh with a fake Prometheus that records its arguments."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    seen = tmp_path / "argv"
    fake = tmp_path / "prometheus"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}\n', encoding="utf-8")
    fake.chmod(0o755)
    token_file = tmp_path / "metrics_token"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PROMETHEUS_BIN": str(fake),
           "METRICS_TOKEN_FILE": str(token_file)}  # fmt: skip
    if token is not None:
        env[TOKEN] = token
    command = service_argv("prometheus")[2:]
    subprocess.run([sh, str(ENTRYPOINT), *command], env=env, check=True, timeout=30)
    return token_file.read_text(encoding="utf-8"), seen.read_text().splitlines(), token_file


def test_the_entrypoint_writes_the_token_privately_then_runs_prometheus(tmp_path: Path) -> None:
    written, argv, token_file = _run_entrypoint(tmp_path, "s3cret-token")
    assert written == "s3cret-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert argv == service_argv("prometheus")[2:]
    assert any(arg.startswith("--config.file=") for arg in argv)


def test_without_a_token_the_file_is_empty(tmp_path: Path) -> None:
    # Prometheus then sends an empty bearer token, which an API or worker without a token
    # ignores; the file must exist, or every scrape fails.
    assert _run_entrypoint(tmp_path, None)[0] == ""
    assert _run_entrypoint(tmp_path, "")[0] == ""
