"""Every way visionq's API and workers start puts prometheus-client in multiprocess mode
before it is imported: `visionq api` and `visionq worker` (in a fresh process, as they
run), and compose, the Dockerfile and the test and dev stacks (StackBuilder) start those
commands, never uvicorn or celery directly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.unit.test_stackbuild import started  # noqa: F401 - the fixture
from visionq.cli.stackbuild import StackBuilder, visionq_command

ROOT = Path(__file__).resolve().parents[2]

# Runs the command in a fresh interpreter with its server replaced by a probe that imports
# the metrics as the real server would and reports prometheus-client's value class.
_PROBE = """
import os, sys
from typer.testing import CliRunner
import visionq.cli.main as main

def probe(*args, **kwargs):
    from visionq.models import metrics  # what the app and the tasks import
    import prometheus_client.values as values
    print("VALUES", values.ValueClass.__name__, os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

if sys.argv[1] == "api":
    import visionq.api.server as server
    server.run = probe
else:
    import visionq.models.metrics_expose as expose
    expose.serve_worker_metrics = lambda *a, **k: None
    from visionq.worker.celery_app import app as celery_app
    celery_app.worker_main = probe
result = CliRunner().invoke(main.app, [sys.argv[1]])
print(result.output)
sys.exit(result.exit_code)
"""


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_command_shares_metrics_across_processes(command: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "VISIONQ_DATA_DIR": str(tmp_path)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PROBE), command],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("VALUES"))
    _, value_class, folder = line.split()
    assert value_class != "MutexValue", "prometheus_client was imported in memory mode"
    assert Path(folder).name.startswith(f"visionq-metrics-{command}-")


def test_compose_and_the_image_start_the_visionq_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["api"]["command"][:2] == ["visionq", "api"]
    assert services["worker"]["command"][:2] == ["visionq", "worker"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'CMD ["visionq", "api"' in dockerfile


def test_the_stacks_start_the_visionq_commands(
    tmp_path: Path,
    started: list[tuple[str, list[str], dict[str, str]]],  # noqa: F811 - the fixture
) -> None:
    # `visionq dev`, `visionq demo` and the test stacks all start through StackBuilder.
    builder = StackBuilder(tmp_path, database_url="sqlite:///x.db")
    builder.start_api(8123)
    builder.start_worker()
    (_, api, _), (_, worker, _) = started
    assert api[: len(visionq_command("api"))] == visionq_command("api")
    assert worker[: len(visionq_command("worker"))] == visionq_command("worker")
