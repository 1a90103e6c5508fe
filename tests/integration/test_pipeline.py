"""Every task end to end: HTTP API -> Redis -> Celery worker -> SDK -> emulator -> SQL."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from emulator.shapes import Shape, draw_scene, encode, random_scene
from tests.integration.conftest import Stack
from tests.integration.helpers import (
    assert_boxes_match,
    exif_rotated_jpeg,
    run_job,
    scene_png,
    submit,
    wait_done,
)

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
    }
    assert job["attempt_count"] == 1 and job["attempts"][0]["outcome"] == "succeeded"
    usage = job["usage"]
    by_modality = {
        d["modality"]: d["token_count"] for d in usage["details"]["prompt_tokens_details"]
    }
    # 800x600 under Gemini 2.5 rules: ceil(800/768) * ceil(600/768) = 2 tiles of 258 tokens.
    assert by_modality["IMAGE"] == 516
    assert usage["prompt_tokens"] == by_modality["IMAGE"] + by_modality["TEXT"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["candidates_tokens"]


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
        "model": "models/gemini-2.5-flash",
        "options": {"temperature": 0},
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
    assert job["model"] == "gemini-2.5-flash" and job["options"] == {"temperature": 0.0}


def test_unknown_model_fails_with_geminis_reason(stack: Stack) -> None:
    data, _ = scene_png(7)
    with stack.client() as client:
        job = run_job(client, data, task="caption", model="gemini-0.1-imaginary")
    assert job["status"] == "failed"
    assert job["error"]["code"] == "gemini_not_found"
    assert "gemini-0.1-imaginary" in job["error"]["message"]
    assert job["attempts"][0]["http_status"] == 404
    assert job["attempts"][0]["outcome"] == "failed"


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
