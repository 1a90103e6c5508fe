"""Every task end to end: HTTP API -> Redis -> Celery worker -> SDK -> emulator -> SQL."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.integration.conftest import Stack
from tests.integration.helpers import (
    assert_boxes_match,
    exif_rotated_jpeg,
    own_tenant,
    run_job,
    scene_png,
    submit,
    wait_done,
)
from visionq.emulator.shapes import Shape, draw_scene, encode, random_scene

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_detect_boxes_equal_ground_truth(stack: Stack, seed: int) -> None:
    data, shapes = scene_png(seed, width=800, height=600, count=4)
    with stack.client() as client:
        job = run_job(client, data, task="detect")
    assert job["status"] == "succeeded", job["error"]
    assert_boxes_match(job["result"]["objects"], shapes)
    assert job["result"]["skipped"] == 0
    assert job["inputs"][0] | {"sha256": None} == {
        "position": 0,
        "sha256": None,
        "mime_type": "image/png",
        "width": 800,
        "height": 600,
        "byte_size": len(data),
        "transport": "inline",
        "changes": [],  # stored as sent
    }
    assert job["attempt_count"] == 1 and job["attempts"][0]["outcome"] == "succeeded"
    usage = job["usage"]
    by_modality = {
        d["modality"]: d["token_count"] for d in usage["details"]["prompt_tokens_details"]
    }
    # The default model (Gemini 3.x) bills an image by its level: HIGH (1120) by default.
    assert by_modality["IMAGE"] == 1120
    assert usage["prompt_tokens"] == by_modality["IMAGE"] + by_modality["TEXT"]
    # 3.x models always think: the thoughts are billed and in the total.
    assert usage["thoughts_tokens"] > 0
    assert usage["total_tokens"] == (
        usage["prompt_tokens"] + usage["candidates_tokens"] + usage["thoughts_tokens"]
    )


def test_detect_jpeg_and_webp(stack: Stack) -> None:
    image, shapes = random_scene(11, width=700, height=500, count=3)
    with stack.client() as client:
        for fmt, mime in (("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
            job = run_job(client, encode(image, fmt, quality=92), task="detect")
            assert job["status"] == "succeeded", job["error"]
            assert job["inputs"][0]["mime_type"] == mime
            assert_boxes_match(job["result"]["objects"], shapes)


def test_detect_exif_rotated_jpeg_uses_upright_coordinates(stack: Stack) -> None:
    upright, shapes = random_scene(21, width=480, height=640, count=3)
    with stack.client() as client:
        job = run_job(client, exif_rotated_jpeg(upright), task="detect")
    assert job["status"] == "succeeded", job["error"]
    assert (job["inputs"][0]["width"], job["inputs"][0]["height"]) == (480, 640)
    assert_boxes_match(job["result"]["objects"], shapes)


def test_detect_with_a_subject_filters(stack: Stack) -> None:
    shapes = [
        Shape("rectangle", "red", (20, 30, 120, 100)),
        Shape("ellipse", "blue", (200, 40, 300, 160)),
        Shape("triangle", "red", (50, 200, 170, 300)),
    ]
    data = encode(draw_scene(400, 320, shapes), "PNG")
    with stack.client() as client:
        job = run_job(client, data, task="detect", prompt="the red shapes")
    assert job["status"] == "succeeded", job["error"]
    assert_boxes_match(job["result"]["objects"], [s for s in shapes if s.color == "red"])


def test_caption(stack: Stack) -> None:
    shapes = [
        Shape("rectangle", "green", (10, 10, 110, 90)),
        Shape("ellipse", "orange", (150, 20, 260, 130)),
    ]
    with stack.client() as client:
        job = run_job(client, encode(draw_scene(320, 200, shapes), "PNG"), task="caption")
    assert job["status"] == "succeeded", job["error"]
    text = job["result"]["text"].lower()
    assert "synthetic" in text and "green" in text and "orange" in text and "320x200" in text


def test_ask_about_one_and_several_images(stack: Stack) -> None:
    one, _ = scene_png(5, count=3)
    with stack.client() as client:
        job = run_job(client, one, task="ask", prompt="How many shapes are there?")
        assert job["status"] == "succeeded", job["error"]
        assert "3" in job["result"]["text"] or "three" in job["result"]["text"].lower()
        two, _ = scene_png(6, count=2)
        job = run_job(client, [one, two], task="ask", prompt="Describe each image.")
    assert job["status"] == "succeeded", job["error"]
    assert [item["position"] for item in job["inputs"]] == [0, 1]
    assert "image 2" in job["result"]["text"].lower()


@pytest.mark.parametrize(
    "labels",
    [
        ["a blue ellipse", "a red rectangle", "a photo of a cat"],
        "a blue ellipse,a red rectangle,a photo of a cat",
        '["a blue ellipse", "a red rectangle", "a photo of a cat"]',
    ],
    ids=["repeated-fields", "comma-separated", "json-list"],
)
def test_classify_multipart_label_forms(stack: Stack, labels: object) -> None:
    data = encode(draw_scene(300, 300, [Shape("rectangle", "red", (50, 50, 250, 200))]), "PNG")
    with stack.client() as client:
        job = run_job(client, data, task="classify", labels=labels)
    assert job["status"] == "succeeded", job["error"]
    assert job["labels"] == ["a blue ellipse", "a red rectangle", "a photo of a cat"]
    assert job["result"]["label"] == "a red rectangle"


def test_json_submission(stack: Stack) -> None:
    data = encode(draw_scene(300, 300, [Shape("ellipse", "blue", (40, 60, 200, 220))]), "JPEG")
    body = {
        "task": "classify",
        "labels": ["red rectangle", "blue ellipse"],
        "model": "models/gemini-3.6-flash",
        "options": {"temperature": 0, "media_resolution": "MEDIA_RESOLUTION_LOW"},
        "images": [{"data": base64.b64encode(data).decode(), "mime_type": "image/png"}],
    }
    with stack.client() as client:
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
        assert response.json()["status"] == "queued"
        job = wait_done(client, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["label"] == "blue ellipse"
    # The declared type is informative: the bytes say JPEG.
    assert job["inputs"][0]["mime_type"] == "image/jpeg"
    # Gemini's own spelling of the level is accepted and stored in ours.
    assert job["model"] == "gemini-3.6-flash"
    assert job["options"] == {"temperature": 0.0, "media_resolution": "LOW"}
    # gemini-3.6-flash ignores temperature (deprecated by Google): said, and not sent.
    assert [warning["code"] for warning in job["warnings"]] == ["option_ignored"]
    assert "temperature" in job["warnings"][0]["message"]


@pytest.mark.parametrize(
    ("model", "code", "named"),
    [
        ("gemini-2.5-flash", "model_retired", "gemini-3.5-flash-lite"),
        ("gemini-3.7-flash", "model_retired", "gemini-3.8-flash"),
        ("gemini-2.0-flash-lite", "model_retired", "gemini-3.5-flash-lite"),
        ("gemini-2.5-flash-lite", "model_retired", "gemini-3.5-flash-lite"),
        ("gemini-3.8-flsh", "unknown_model", "gemini-3.8-flash"),
    ],
)
def test_retired_and_unknown_models_are_refused_at_submit(
    stack: Stack, model: str, code: str, named: str
) -> None:
    data, _ = scene_png(7)
    # A tenant of its own: a listing of the shared one stops at 200 jobs and would miss one.
    tenant = f"models-{model.replace('.', '-')}"
    with own_tenant(stack.env["VISIONQ_DATABASE_URL"], stack.api_url, tenant) as client:
        response = submit(client, data, task="caption", model=model)
        assert client.get("/v1/jobs").json()["jobs"] == []
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and named in error["message"], error


@pytest.mark.parametrize(
    ("model", "task", "options", "hint"),
    [
        # Google answers these with a 400 after the job waited; refused before it queues.
        ("gemini-3.8-flash", "detect", {"thinking_budget": 0}, "thinking_level LOW"),
        ("gemini-3.5-flash-lite", "caption", {"thinking_budget": 0}, "thinking mode"),
        ("gemini-3.8-flash", "caption", {"thinking_level": "minimal"}, "LOW"),
        (
            "gemini-3.6-flash",
            "caption",
            {"thinking_level": "LOW", "thinking_budget": 512},
            "not both",
        ),
        ("gemini-3.5-flash-lite", "segment", {}, "segment"),
    ],
)
def test_options_the_model_does_not_take_are_422s(
    stack: Stack, model: str, task: str, options: dict[str, object], hint: str
) -> None:
    data, _ = scene_png(8)
    with stack.client() as client:
        response = submit(client, data, task=task, model=model, options=options)
    assert response.status_code == 422, response.text
    assert hint in response.json()["error"]["message"], response.json()


@pytest.mark.parametrize("task", ["detect", "segment"])
@pytest.mark.parametrize("model", ["gemini-3.8-flash", "gemini-3.6-flash", None])
def test_detect_and_segment_run_on_models_that_only_think(
    stack: Stack, task: str, model: str | None
) -> None:
    """The least thinking each model allows comes from the catalogue: never budget 0 to a
    model that answers it with 400 "only works in thinking mode" (python-genai#2936)."""
    image, shapes = scene_png(9, count=2)
    fields: dict[str, object] = {"task": task, "options": {"cache": False}}
    if model is not None:
        fields["model"] = model
    with stack.client() as client:
        job = run_job(client, image, **fields)
    assert job["status"] == "succeeded", job["error"]
    assert_boxes_match(job["result"]["objects"], shapes, tolerance=3)


def test_alias_is_pinned_with_a_warning(stack: Stack) -> None:
    data, _ = scene_png(10)
    with stack.client() as client:
        job = run_job(client, data, task="caption", model="gemini-flash-latest")
    assert job["status"] == "succeeded", job["error"]
    assert job["model"] == "gemini-3.8-flash"
    assert [warning["code"] for warning in job["warnings"]] == ["model_alias"]


def test_oversize_for_gemini_inline_limit_is_a_clear_failure(stack: Stack) -> None:
    """A photo-like PNG over the emulator's 20 MB inline limit is refused by 'Gemini'."""
    # 4 MB limit in the test API: this one is refused at submit instead.
    noise = Image.effect_noise((1500, 1500), 100).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "PNG", compress_level=0)
    with stack.client() as client:
        response = submit(client, out.getvalue(), task="caption")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_model_with_a_shutdown_date_runs_with_a_warning(stack: Stack) -> None:
    data, _ = scene_png(11)
    with stack.client() as client:
        response = submit(client, data, task="caption", model="gemini-3.1-flash-lite")
        assert response.status_code == 202, response.text
        [warning] = response.json()["warnings"]
        job = wait_done(client, response.json()["id"])
    assert warning["code"] == "model_deprecated" and "2027-05-07" in warning["message"]
    assert "gemini-3.5-flash-lite" in warning["message"]
    assert job["status"] == "succeeded", job["error"]
    assert [w["code"] for w in job["warnings"]] == ["model_deprecated"]
