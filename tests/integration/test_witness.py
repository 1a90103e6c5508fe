"""The emulator as an independent witness: when its billing disagrees with visionq's
catalogue, the jobs' estimates differ from their usage and `visionq cost report` says so."""

from __future__ import annotations

import json
import statistics
import subprocess
from typing import Any

import pytest

from tests.integration.conftest import DISAGREEING_MODELS, Stack
from tests.integration.helpers import run_job, scene_png
from tests.services import visionq_command

pytestmark = pytest.mark.integration

SIZES = [(500, 400), (900, 700), (1600, 1000)]


def _image_tokens(job: dict[str, Any]) -> int:
    details = job["usage"]["details"]["prompt_tokens_details"]
    return int(next(d["token_count"] for d in details if d["modality"] == "IMAGE"))


def _abs_pct(job: dict[str, Any]) -> float:
    billed = job["usage"]["prompt_tokens"]
    return float(abs(job["estimate"]["input_tokens"] - billed) / billed * 100)


def _cost_report(stack: Stack, *args: str) -> str:
    return subprocess.run(
        visionq_command("cost", "report", *args),
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def test_disagreeing_billing_is_detected(witness_stack: Stack) -> None:
    models = DISAGREEING_MODELS["models"]
    assert set(models) == {"gemini-3.5-flash-lite", "gemini-3.8-flash"}
    jobs: dict[str, list[dict[str, Any]]] = {model: [] for model in models}
    with witness_stack.client() as client:
        for model in models:
            for seed, (width, height) in enumerate(SIZES):
                data, _ = scene_png(80 + seed, width=width, height=height)
                job = run_job(client, data, task="caption", model=model)
                assert job["status"] == "succeeded", job["error"]
                jobs[model].append(job)
    # What the emulator billed is its own rule, not visionq's estimate.
    lite = jobs["gemini-3.5-flash-lite"]
    assert [_image_tokens(job) for job in lite] == [1089] * 3
    tiles = jobs["gemini-3.8-flash"]
    assert [_image_tokens(job) for job in tiles] == [1 * 1 * 258, 2 * 1 * 258, 3 * 2 * 258]
    for job in lite + tiles:
        assert job["estimate"]["images"][0]["tokens"] != _image_tokens(job)
        assert job["estimate"]["input_tokens"] != job["usage"]["prompt_tokens"]

    report = json.loads(_cost_report(witness_stack, "--json"))
    checks = {check["model"]: check for check in report["estimation"]}
    for model, model_jobs in jobs.items():
        errors = [_abs_pct(job) for job in model_jobs]
        check = checks[model]
        assert check["jobs"] == 3
        assert check["mean_abs_pct"] == pytest.approx(statistics.mean(errors))
        assert check["worst_abs_pct"] == pytest.approx(max(errors))
        assert check["worst_abs_pct"] > 0
    # A flat bill whatever the size: the report proposes the emulator's own rule.
    assert checks["gemini-3.5-flash-lite"]["proposal"] == {
        "gemini-3.5-flash-lite": {"image_tokens": {"image_rule": "flat", "tile_tokens": 1089}}
    }
    # Bills that vary with size but not like the estimate: no proposal, a finding.
    assert checks["gemini-3.8-flash"]["proposal"] is None
    assert "differ from the rule in 3 of 3 images" in checks["gemini-3.8-flash"]["finding"]
    human = _cost_report(witness_stack)
    assert "every image was billed 1089" in human
    assert "gemini-3.8-flash: billed image tokens differ from the rule" in human
