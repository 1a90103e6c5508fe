"""Contract (a): every request visionq's worker builds is one the published schema accepts.

For each usable model of visionq's catalogue and each task it serves, every job option
(one at a time, each value the model takes, and a combination), inline and through the
File API: the job goes through the worker's own ``build_request`` and ``GeminiCaller``
(the real SDK, with an UploadCache over a real database), to the emulator. The bodies the
SDK put on the wire (generateContent, and the upload start) are checked against the stored
schema of the API version visionq uses, unknown fields included; so are the answers.
Option sets visionq refuses at submit are never built (as in production).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import types
from PIL import Image

from tests.contract.wire import (
    REFUSALS,
    Recorder,
    request_problems,
    response_problems,
    version_of,
)
from tests.emulator.conftest import API_KEY
from visionq.emulator.apischema import load_schema
from visionq.models.blobs import BlobStore
from visionq.models.db import make_engine, make_session_factory
from visionq.models.leases import InputSpec, JobSpec
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings
from visionq.vision.catalogue import Catalogue, ModelEntry, load_catalogue
from visionq.vision.estimate import estimate_job
from visionq.vision.model_fit import ModelChoice, check_options
from visionq.vision.tasks import TASK_DEFAULTS, JobOptions, JobSpecError, TaskKind, validate_job
from visionq.worker.files import FilePolicy, UploadCache
from visionq.worker.gemini import GeminiCaller, GeminiCallError
from visionq.worker.requests import build_request

CATALOGUE = load_catalogue()
# The API version the worker talks to unless configured otherwise.
VERSION = str(Settings.model_fields["gemini_api_version"].default)
INLINE_LIMIT = int(Settings.model_fields["inline_limit_bytes"].default)
SCHEMA = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
PROMPTS: dict[TaskKind, dict[str, Any]] = {
    TaskKind.CAPTION: {},
    TaskKind.ASK: {"prompt": "How many shapes are there?"},
    TaskKind.CLASSIFY: {"labels": ["circle", "square"], "prompt": "drawn shapes"},
    TaskKind.DETECT: {"prompt": "the shapes"},
    TaskKind.SEGMENT: {"prompt": "the shapes"},
    TaskKind.COMPARE: {},
    TaskKind.CUSTOM: {"prompt": "Count the shapes.", "schema": SCHEMA},
}
MULTI_IMAGE = {TaskKind.ASK, TaskKind.COMPARE, TaskKind.CUSTOM}


def _image(colour: str, fmt: str) -> tuple[bytes, str]:
    picture = Image.new("RGB", (96, 64), "white")
    picture.paste(colour, (20, 10, 60, 50))
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue(), f"image/{fmt.lower()}"


@dataclass
class Worker:
    """What the worker needs to build and send a job's request, pointed at the emulator."""

    gemini: GeminiCaller
    uploads: UploadCache
    blobs: BlobStore
    recorder: Recorder
    inputs: list[InputSpec]


@pytest.fixture(scope="module")
def worker(contract_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    root: Path = tmp_path_factory.mktemp("contract")
    database = f"sqlite:///{root / 'visionq.db'}"
    upgrade(database)
    engine = make_engine(database, pool_size=2)
    recorder = Recorder()
    http = httpx2.Client(event_hooks=recorder.hooks(), timeout=60)
    client = genai.Client(
        api_key=API_KEY,
        http_options=types.HttpOptions(
            base_url=contract_emulator, api_version=VERSION, timeout=60_000, httpx_client=http
        ),
    )
    gemini = GeminiCaller(client, secret=API_KEY)
    blobs = BlobStore(str(root / "blobs"))
    uploads = UploadCache(
        sessions=make_session_factory(engine),
        gemini=gemini,
        blobs=blobs,
        identity="contract",
        policy=FilePolicy(
            margin=timedelta(minutes=5), stale_after=timedelta(minutes=2), active_timeout_s=30
        ),
    )
    inputs = []
    for position, (colour, fmt) in enumerate((("red", "PNG"), ("blue", "JPEG"))):
        data, mime_type = _image(colour, fmt)
        inputs.append(InputSpec(position, blobs.put(data), mime_type, 96, 64))
    yield Worker(gemini, uploads, blobs, recorder, inputs)
    gemini.close()
    http.close()
    engine.dispose()


def option_sets(entry: ModelEntry, task: TaskKind, images: int) -> list[dict[str, Any]]:
    """Every job option alone (each value the model may take), plus one combination."""
    sets: list[dict[str, Any]] = [
        {},
        {"temperature": 0.4},
        {"max_output_tokens": 3000},
        {"max_side": 64},
        {"economy": True},
        {"cache": False},
    ]
    sets += [{"media_resolution": level} for level in ("LOW", "MEDIUM", "HIGH")]
    others: list[str | None] = [None] * (images - 1)
    sets += [
        {"image_media_resolution": [level, *others]}
        for level in ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")
    ]
    if task in (TaskKind.DETECT, TaskKind.SEGMENT):
        sets.append({"max_objects": 5})
    thinking = entry.thinking
    if thinking is not None:
        sets += [{"thinking_level": level.value} for level in thinking.levels]
        budget = thinking.budget
        if budget is not None:
            sets += [{"thinking_budget": value} for value in (budget.min, budget.max, 0, -1)]
    floor = thinking.floor if thinking is not None else None
    combination: dict[str, Any] = {
        "temperature": 0.2,
        "max_output_tokens": 4096,
        "media_resolution": "LOW",
        "max_side": 80,
    }
    if floor is not None:
        combination["thinking_level"] = floor.value
    sets.append(combination)
    return sets


def admitted(
    task: TaskKind, model: str, entry: ModelEntry, options: dict[str, Any], images: int
) -> bool:
    """Whether visionq's submit checks let this job in (refused ones are never built)."""
    fields = PROMPTS[task]
    try:
        parsed = JobOptions.model_validate(options)
        validate_job(
            task,
            prompt=fields.get("prompt"),
            labels=fields.get("labels"),
            images=images,
            schema=fields.get("schema"),
            options=parsed,
        )
        check_options(task, parsed, ModelChoice(model, entry), images=images)
    except (JobSpecError, ValueError):
        return False
    return True


def _job(task: TaskKind, model: str, options: dict[str, Any], inputs: list[InputSpec]) -> JobSpec:
    fields = PROMPTS[task]
    return JobSpec(
        id=str(uuid.uuid4()),
        tenant="contract",
        task=task.value,
        model=model,
        prompt=fields.get("prompt"),
        labels=fields.get("labels"),
        # As the row gives it to the worker: the model loaded from the stored JSON.
        options=JobOptions.model_validate(options),
        response_schema=fields.get("schema"),
        estimate=None,
        started_at=dt.datetime.now(dt.UTC),
        inputs=tuple(inputs),
    )


def _cases(catalogue: Catalogue) -> Iterator[tuple[str, TaskKind]]:
    for model in catalogue.usable():
        entry = catalogue.models[model]
        yield from ((model, task) for task in TaskKind if task in entry.tasks)


CASES = list(_cases(CATALOGUE))


def test_the_catalogue_gives_cases() -> None:
    assert CATALOGUE.usable(), "visionq's catalogue has no usable model"
    assert {model for model, _ in CASES} == set(CATALOGUE.usable())


@pytest.mark.parametrize(("model", "task"), CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_every_request_the_worker_builds_fits_the_schema(
    worker: Worker, model: str, task: TaskKind
) -> None:
    entry = CATALOGUE.models[model]
    images = 2 if task in MULTI_IMAGE else 1
    inputs = worker.inputs[:images]
    problems: list[str] = []
    refused: list[str] = []
    sent = 0
    runs: list[tuple[dict[str, Any], int, int | None]] = []
    for options in option_sets(entry, task, images):
        if not admitted(task, model, entry, options, images):
            continue
        runs.append((options, INLINE_LIMIT, None))
        # Through the File API (an inline limit nothing fits under): what changes the parts.
        if not options or "image_media_resolution" in options:
            runs.append((options, 1, None))
    # With max_output_tokens raised, as the pipeline does after an empty MAX_TOKENS answer.
    runs.append(({}, INLINE_LIMIT, 8192))
    for options, limit, cap in runs:
        job = _job(task, model, options, inputs)
        request = build_request(
            job,
            blobs=worker.blobs,
            uploads=worker.uploads,
            inline_limit=limit,
            catalogue=CATALOGUE,
        )
        if cap is not None:
            request.config["max_output_tokens"] = cap
        try:
            worker.gemini.generate(
                model=request.model, contents=request.parts, config=request.config
            )
        except GeminiCallError as exc:
            if exc.http_status == 400:
                key = f"{model}: {exc.message}"
                REFUSALS[key] = REFUSALS.get(key, 0) + 1
                refused.append(f"{model} {task} {options}: {exc.message}")
        exchanges = worker.recorder.take()
        for exchange in exchanges:
            where = f"{model} {task} {options} inline_limit={limit} cap={cap}"
            if exchange.request_body.startswith(b"{"):
                problems += [f"{where}: {p}" for p in request_problems(exchange)]
                sent += 1
            problems += [f"{where}: {p}" for p in response_problems(exchange)]
        assert any(e.path.endswith(":generateContent") for e in exchanges), "no call was sent"
    assert sent >= len(runs)
    assert not problems, "\n".join(itertools.islice(problems, 20))
    # visionq admitted these jobs and the witness refused them: one of the two catalogues
    # is wrong about the model (a wrong per-model rule must fail here, not in production).
    assert not refused, "\n".join(itertools.islice(refused, 20))


def test_the_worker_s_file_calls_use_routes_the_schema_has(worker: Worker) -> None:
    data = worker.blobs.get(worker.inputs[0].sha256)
    uploaded = worker.gemini.upload(data, mime_type="image/png", display_name="contract")
    assert uploaded.name is not None
    worker.gemini.get_file(uploaded.name)
    worker.gemini.delete_file(uploaded.name)
    problems: list[str] = []
    exchanges = worker.recorder.take()
    for exchange in exchanges:
        schema = load_schema(version_of(exchange.path))
        assert schema.route(exchange.method, exchange.path.split("?")[0]) is not None, exchange
        if exchange.request_body.startswith(b"{"):
            problems += request_problems(exchange)
        problems += response_problems(exchange)
    assert {e.method for e in exchanges} == {"POST", "GET", "DELETE"}
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("task", list(TaskKind), ids=[task.value for task in TaskKind])
def test_each_task_sends_its_own_cap_and_thinking(worker: Worker, task: TaskKind) -> None:
    """Issue 17: every caption went out with max_output_tokens 32,768 (8192 + the most
    thinking), which the budget held. On the wire now: the task's own cap and thinking
    (vision.tasks.TASK_DEFAULTS), the same number the estimate holds."""
    model = "gemini-3.6-flash"  # takes every task, and every thinking level
    images = 2 if task in MULTI_IMAGE else 1
    job = _job(task, model, {}, worker.inputs[:images])
    request = build_request(
        job, blobs=worker.blobs, uploads=worker.uploads, inline_limit=INLINE_LIMIT,
        catalogue=CATALOGUE,
    )  # fmt: skip
    worker.gemini.generate(model=request.model, contents=request.parts, config=request.config)
    [call] = [e for e in worker.recorder.take() if e.path.endswith(":generateContent")]
    sent = json.loads(call.request_body)["generationConfig"]
    defaults = TASK_DEFAULTS[task]
    options = JobOptions()
    assert sent["maxOutputTokens"] == defaults.answer_allowance(options) + defaults.thinking_tokens
    expected_level = "MINIMAL" if defaults.thinking_level == "MINIMAL" else "LOW"
    thinking = sent["thinkingConfig"]  # the SDK leaves a dict's own keys as they are
    assert thinking.get("thinkingLevel", thinking.get("thinking_level")) == expected_level
    assert sent["maxOutputTokens"] <= 6144 or task is TaskKind.SEGMENT
    estimate = estimate_job(
        model=model, task=task, prompt_text="", images=[(96, 64)] * images, options=options,
        catalogue=CATALOGUE, day=dt.date(2026, 12, 5),
    )  # fmt: skip
    assert estimate.output_tokens_max == sent["maxOutputTokens"]
