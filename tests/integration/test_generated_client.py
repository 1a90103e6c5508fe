"""A client generated from the running API's /openapi.json by openapi-python-client imports
and runs a job (issue 17); job id prefixes and GET /v1/jobs?ids= on the live API."""

from __future__ import annotations

import base64
import importlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import run_job, scene_png

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# scripts/test installs the generator here (its pins: tests/integration/openapi_generator.txt).
GENERATOR = ROOT / ".venv" / "openapi-generator"
# The generator takes image/png for a content type it cannot read; the document is right to
# say image/png, so the client is told to read it as bytes.
CONFIG = "content_type_overrides:\n  image/png: application/octet-stream\npost_hooks: []\n"
PACKAGE = "vq_generated"


@pytest.fixture(scope="module")
def generated(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    assert (GENERATOR / "openapi_python_client").is_dir(), (
        f"openapi-python-client is not installed in {GENERATOR}: run scripts/test (it "
        "installs it there from tests/integration/openapi_generator.txt)"
    )
    out = tmp_path_factory.mktemp("generated")
    (out / "config.yaml").write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(GENERATOR)}
    done = subprocess.run(
        [
            sys.executable, "-m", "openapi_python_client", "generate",
            "--url", f"{stack.api_url}/openapi.json", "--meta", "none",
            "--output-path", str(out / PACKAGE), "--config", str(out / "config.yaml"),
        ],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # Nothing of the document was left out of the client.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _load(generated: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{generated.__name__}.{name}")


def test_every_module_of_the_generated_client_imports(generated: ModuleType) -> None:
    root = Path(generated.__file__ or "").parent
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        importlib.import_module(module.removesuffix(".__init__"))


def test_a_generated_client_runs_a_detect_job(stack: Stack, generated: ModuleType) -> None:
    client_module = _load(generated, "client")
    submit = _load(generated, "api.jobs.submit_job")
    read = _load(generated, "api.jobs.read_job")
    annotated = _load(generated, "api.jobs.annotated_png")
    models = _load(generated, "models")
    types = _load(generated, "types")
    png, _ = scene_png(17)
    client = client_module.AuthenticatedClient(base_url=stack.api_url, token=stack.keys["acme"])
    with client:
        body = models.SubmitJobFilesBody(
            task=models.SubmitJobFilesBodyTask.DETECT,
            image=[types.File(payload=png, file_name="scene.png")],
        )
        job = submit.sync(client=client, body=body)
        assert isinstance(job, models.JobPublic), job
        assert job.status == models.JobStatus.QUEUED
        deadline = time.monotonic() + 60
        while job.status in (models.JobStatus.QUEUED, models.JobStatus.RUNNING):
            assert time.monotonic() < deadline, f"job {job.id} still {job.status}"
            time.sleep(0.1)
            job = read.sync(job.id, client=client)
            assert isinstance(job, models.JobPublic), job
        assert job.status == models.JobStatus.SUCCEEDED, job.error
        assert job.task == models.TaskKind.DETECT
        assert isinstance(job.result, models.DetectResult), job.result
        assert job.result.objects and job.result.objects[0].box
        image = annotated.sync(job.id[:8], client=client)
        assert isinstance(image, types.File), image
        assert image.payload.read().startswith(b"\x89PNG")


def test_a_generated_client_sends_json_and_reads_an_estimate_and_errors(
    stack: Stack, generated: ModuleType
) -> None:
    client_module = _load(generated, "client")
    estimate = _load(generated, "api.cost.estimate")
    read = _load(generated, "api.jobs.read_job")
    models = _load(generated, "models")
    png, _ = scene_png(18)
    client = client_module.AuthenticatedClient(base_url=stack.api_url, token=stack.keys["acme"])
    with client:
        image = models.EstimateJsonJobCreateImageIn(data=base64.b64encode(png).decode())
        task = models.EstimateJsonJobCreateTask.CAPTION
        body = models.EstimateJsonJobCreate(task=task, images=[image])
        answer = estimate.sync(client=client, body=body)
        assert isinstance(answer, models.EstimatePublic), answer
        assert answer.images[0].width == 640
        missing = read.sync("0123456789abcdef", client=client)
        assert isinstance(missing, models.ErrorBody) and missing.error.code == "job_not_found"


def test_a_job_id_prefix_names_the_job_everywhere(stack: Stack) -> None:
    png, _ = scene_png(19)
    with stack.client() as client:
        job = run_job(client, png, task="detect")
        prefix = job["id"][:8]
        assert client.get(f"/v1/jobs/{prefix}").json()["id"] == job["id"]
        assert client.get(f"/v1/jobs/{prefix}/annotated.png").status_code == 200
        assert client.post(f"/v1/jobs/{prefix}/cancel").json()["status"] == "succeeded"
        short = client.get(f"/v1/jobs/{job['id'][:5]}")
        assert short.status_code == 422 and short.json()["error"]["code"] == "invalid_job_id"
    with stack.client("globex") as other:
        assert other.get(f"/v1/jobs/{prefix}").status_code == 404


def test_many_jobs_are_read_in_one_request(stack: Stack) -> None:
    with stack.client() as client:
        first = run_job(client, scene_png(20)[0], task="caption")
        second = run_job(client, scene_png(21)[0], task="caption")
        unknown = "00000000-0000-4000-8000-000000000000"
        page = client.get(
            "/v1/jobs", params={"ids": f"{second['id']},{unknown},{first['id']}"}
        ).json()
        assert [job["id"] for job in page["jobs"]] == [second["id"], first["id"]]
        assert page["missing"] == [unknown] and page["next_cursor"] is None
        too_many = ",".join(str(uuid.uuid4()) for _ in range(201))
        refused = client.get("/v1/jobs", params={"ids": too_many})
        assert refused.status_code == 422
        assert "1 to 200 job ids" in refused.json()["error"]["message"]


def test_the_docs_and_their_assets_come_from_the_api_server(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", page.text)
        assert len(assets) >= 2 and "https://" not in page.text
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and response.content, asset
