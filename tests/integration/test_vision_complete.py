"""Issue 4 end to end: segmentation, compare, structured output, image preparation, File API."""

from __future__ import annotations

import io
import random
import threading
import zlib
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw

from tests.integration.conftest import Stack
from tests.integration.helpers import assert_boxes_match, run_job, submit, wait_done
from visionq.emulator.shapes import Shape, draw_scene, encode, triangle_points

pytestmark = pytest.mark.integration

SEGMENT_SHAPES = [
    Shape("rectangle", "red", (40, 30, 240, 150)),
    Shape("ellipse", "blue", (300, 40, 560, 300)),
    Shape("triangle", "green", (60, 220, 260, 420)),
]


def truth_mask(shape: Shape) -> Image.Image:
    """The drawn shape as a binary mask of its box's size."""
    x1, y1, _, _ = shape.box
    mask = Image.new("1", (shape.width, shape.height), 0)
    draw = ImageDraw.Draw(mask)
    if shape.kind == "rectangle":
        draw.rectangle((0, 0, shape.width - 1, shape.height - 1), fill=255)
    elif shape.kind == "ellipse":
        draw.ellipse((0, 0, shape.width - 1, shape.height - 1), fill=255)
    else:
        draw.polygon([(x - x1, y - y1) for x, y in triangle_points(shape.box)], fill=255)
    return mask


def iou(a: Image.Image, b: Image.Image) -> float:
    """Intersection over union of two binary (mode "1") masks of the same size."""
    assert a.size == b.size
    both = ImageChops.logical_and(a, b).histogram()[255]
    either = ImageChops.logical_or(a, b).histogram()[255]
    return both / either


def test_segment_masks_match_the_drawn_shapes(stack: Stack) -> None:
    data = encode(draw_scene(640, 480, SEGMENT_SHAPES), "PNG")
    with stack.client() as client:
        job = run_job(client, data, task="segment")
        assert job["status"] == "succeeded", job["error"]
        objects = job["result"]["objects"]
        assert_boxes_match(objects, SEGMENT_SHAPES)
        assert job["result"]["skipped"] == 0
        by_label = {obj["label"]: obj for obj in objects}
        for shape in SEGMENT_SHAPES:
            obj = by_label[shape.label]
            png = client.get(obj["mask_url"])
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
            mask = Image.open(io.BytesIO(png.content))
            truth = truth_mask(shape)
            assert mask.size == truth.size  # resized from the model's resolution to the box
            score = iou(mask.convert("1"), truth)
            assert score >= 0.95, (shape.label, score)
            assert abs(obj["area"] - truth.histogram()[255]) <= 0.05 * obj["area"]
        annotated = client.get(f"/v1/jobs/{job['id']}/annotated.png")
        assert annotated.status_code == 200
        overlay = Image.open(io.BytesIO(annotated.content)).convert("RGB")
        # Mask pixels are tinted: the rectangle's centre is no longer the pure drawn red.
        assert overlay.getpixel((140, 90)) != (230, 30, 30)
        assert client.get(f"/v1/jobs/{job['id']}/masks/9.png").status_code == 404


def test_compare_two_images(stack: Stack) -> None:
    first = encode(draw_scene(300, 200, SEGMENT_SHAPES[:1]), "PNG")
    second = encode(
        draw_scene(300, 200, [SEGMENT_SHAPES[0], Shape("ellipse", "blue", (150, 20, 280, 180))]),
        "PNG",
    )
    with stack.client() as client:
        job = run_job(client, [first, second], task="compare")
        assert job["status"] == "succeeded", job["error"]
        text = job["result"]["text"].lower()
        assert "red rectangle" in text and "blue ellipse" in text
        one = submit(client, first, task="compare")
    assert one.status_code == 422 and one.json()["error"]["code"] == "too_few_images"


SCHEMA = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "colours": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
    },
    "required": ["count", "colours", "summary"],
}


def test_custom_with_schema_and_without(stack: Stack) -> None:
    data = encode(draw_scene(300, 200, SEGMENT_SHAPES[:1]), "PNG")
    with stack.client() as client:
        job = run_job(
            client, data, task="custom", prompt="Count the shapes.", options={}, schema=SCHEMA
        )
        assert job["status"] == "succeeded", job["error"]
        value = job["result"]["json"]
        assert isinstance(value["count"], int) and isinstance(value["colours"], list)
        assert job["response_schema"] == SCHEMA
        plain = run_job(client, data, task="custom", prompt="Describe the image.")
        assert plain["status"] == "succeeded" and plain["result"]["text"]
        bad = submit(client, data, task="custom", prompt="x", schema={"type": "nonsense"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_schema"
        wrong = submit(client, data, task="caption", schema=SCHEMA)
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "unexpected_schema"


def test_invalid_structured_answer_is_retried_once(files_stack: Stack) -> None:
    """The files emulator makes every 2nd structured answer invalid: one retry fixes it."""
    data = encode(draw_scene(300, 200, SEGMENT_SHAPES[:1]), "PNG")
    outcomes = []
    with files_stack.client() as client:
        for _ in range(2):
            job = run_job(
                client,
                data,
                task="custom",
                prompt="Count.",
                schema=SCHEMA,
                options={"cache": False},
            )
            outcomes.append(job)
    retried = [job for job in outcomes if job["attempt_count"] == 2]
    assert retried, [job["attempts"] for job in outcomes]
    for job in retried:
        assert job["status"] == "succeeded"
        first, second = job["attempts"]
        assert first["outcome"] == "failed" and first["error_class"] == "SchemaMismatchError"
        assert "does not match the schema" in first["error_message"]
        assert second["outcome"] == "succeeded"


def test_downscaled_job_boxes_refer_to_original_pixels(stack: Stack) -> None:
    shapes = [
        Shape("rectangle", "red", (120, 90, 520, 390)),
        Shape("ellipse", "blue", (700, 200, 1100, 700)),
    ]
    data = encode(draw_scene(1200, 900, shapes), "PNG")
    with stack.client() as client:
        job = run_job(client, data, task="detect", options={"max_side": 600})
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["image"] == {"width": 1200, "height": 900}
    assert_boxes_match(job["result"]["objects"], shapes, tolerance=1)


def _encoded(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def test_unusual_modes_are_accepted_and_detected(stack: Stack) -> None:
    scene = draw_scene(400, 300, SEGMENT_SHAPES[:1])
    variants = {
        "cmyk-jpeg": _encoded(scene.convert("CMYK"), "JPEG", quality=95),
        "palette-png": _encoded(
            scene.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG"
        ),
        "rgba-png": _encoded(scene.convert("RGBA"), "PNG"),
    }
    with stack.client() as client:
        for name, data in variants.items():
            job = run_job(client, data, task="detect")
            assert job["status"] == "succeeded", (name, job["error"])
            assert_boxes_match(job["result"]["objects"], SEGMENT_SHAPES[:1], tolerance=2)


def test_truncated_and_bomb_images_are_refused_at_submit(stack: Stack) -> None:
    scene = draw_scene(400, 300, SEGMENT_SHAPES[:1])
    truncated = _encoded(scene, "JPEG", quality=95)
    truncated = truncated[: len(truncated) // 2]
    with stack.client() as client:
        response = submit(client, truncated, task="caption")
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "corrupt_image"
        assert "truncated" in response.json()["error"]["message"].lower()


def _stats(stack: Stack) -> dict[str, Any]:
    return dict(httpx.get(f"{stack.env['EMULATOR_URL']}/_emulator/stats", timeout=5).json())


def _big_png(stack: Stack, salt: int) -> bytes:
    """A PNG of noise over 20 MB (noise does not compress), new for each stack and salt."""
    seed = zlib.crc32(f"{stack.name}-{salt}".encode())
    noise = Image.frombytes("RGB", (2700, 2700), random.Random(seed).randbytes(2700 * 2700 * 3))
    ImageDraw.Draw(noise).rectangle((100, 100, 599, 399), fill=(230, 30, 30))
    data = _encoded(noise, "PNG", compress_level=1)
    assert len(data) > 20 * 1024 * 1024
    return data


def test_big_image_goes_through_the_file_api_and_is_reused(files_stack: Stack) -> None:
    data = _big_png(files_stack, 0)
    before = _stats(files_stack)
    with files_stack.client() as client:
        first = run_job(client, data, task="caption")
        assert first["status"] == "succeeded", first["error"]
        assert first["inputs"][0]["transport"] == "file"
        after_first = _stats(files_stack)
        assert after_first["uploads_completed"] - before["uploads_completed"] == 1
        second = run_job(client, data, task="caption", options={"cache": False})
        assert second["status"] == "succeeded", second["error"]
        assert second["inputs"][0]["transport"] == "file"
    assert _stats(files_stack)["uploads_completed"] == after_first["uploads_completed"]


def test_concurrent_jobs_with_one_new_image_upload_it_once(files_stack: Stack) -> None:
    data = _big_png(files_stack, 1)
    before = _stats(files_stack)
    with files_stack.client() as client:
        ids: list[str] = []
        threads = [
            threading.Thread(
                target=lambda: ids.append(
                    submit(client, data, task="caption", options={"cache": False}).json()["id"]
                )
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        jobs = [wait_done(client, job_id, timeout=120) for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 4, [job["error"] for job in jobs]
    assert _stats(files_stack)["uploads_completed"] - before["uploads_completed"] == 1


def test_expired_upload_is_uploaded_again_transparently(files_stack: Stack) -> None:
    data = _big_png(files_stack, 2)
    with files_stack.client() as client:
        first = run_job(client, data, task="caption")
        assert first["status"] == "succeeded", first["error"]
        stats = _stats(files_stack)
        files = httpx.get(
            f"{files_stack.env['EMULATOR_URL']}/v1beta/files",
            params={"pageSize": 100},
            headers={"x-goog-api-key": "emulator-test-key"},
        ).json()["files"]
        for file in files:
            httpx.post(f"{files_stack.env['EMULATOR_URL']}/_emulator/{file['name']}:expire")
        second = run_job(client, data, task="caption", options={"cache": False})
    assert second["status"] == "succeeded", second["error"]
    assert _stats(files_stack)["uploads_completed"] - stats["uploads_completed"] == 1


def test_files_cli_lists_and_prunes_our_uploads(files_stack: Stack) -> None:
    import json
    import subprocess

    from tests.services import visionq_command

    data = _big_png(files_stack, 3)
    with files_stack.client() as client:
        assert run_job(client, data, task="caption")["status"] == "succeeded"
    listed = subprocess.run(visionq_command("files", "list", "--json"), env=files_stack.env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    rows = json.loads(listed.stdout)
    assert any(row["state"] == "ACTIVE" and row["uri"] for row in rows)
    kept = subprocess.run(visionq_command("files", "prune"), env=files_stack.env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    # Without --all, ACTIVE uploads in use are kept.
    assert "deleted 0 upload(s)" in kept.stdout
    before = _stats(files_stack)
    pruned = subprocess.run(visionq_command("files", "prune", "--all"), env=files_stack.env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert "kept 0" in pruned.stdout
    assert _stats(files_stack)["files_deleted"] > before["files_deleted"]
    after = json.loads(subprocess.run(visionq_command("files", "list", "--json"),
                                      env=files_stack.env, capture_output=True, text=True,
                                      check=True).stdout)  # fmt: skip
    # The list shows every stack's uploads in this shared database; prune, this stack's.
    emulator = files_stack.env["EMULATOR_URL"]
    assert [row for row in after if str(row["uri"]).startswith(emulator)] == []
    # The next job with that image uploads it again, transparently.
    with files_stack.client() as client:
        again = run_job(client, data, task="caption", options={"cache": False})
    assert again["status"] == "succeeded" and again["inputs"][0]["transport"] == "file"


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels (and holds none): a decompression bomb."""
    import struct

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))  # fmt: skip


def test_bomb_and_heic_at_submit(stack: Stack) -> None:
    import pillow_heif

    with stack.client() as client:
        bomb = submit(client, _png_header(100_000, 100_000), task="caption")
        assert bomb.status_code == 413, bomb.text
        assert bomb.json()["error"]["code"] == "image_too_large"
        heif = pillow_heif.from_pillow(draw_scene(320, 240, SEGMENT_SHAPES[:1]))
        out = io.BytesIO()
        heif.save(out, quality=95)
        job = run_job(client, out.getvalue(), task="detect")
    assert job["status"] == "succeeded", job["error"]
    assert job["inputs"][0]["mime_type"] in ("image/heic", "image/heif")
    assert_boxes_match(job["result"]["objects"], SEGMENT_SHAPES[:1], tolerance=2)
