"""Detection and segmentation through the real SDK over HTTP."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from google import genai
from google.genai import types
from PIL import Image

from tests.emulator.helpers import ask, box_error, parse_json_reply
from visionq.emulator.shapes import Shape, draw_scene, encode, random_scene

DETECT_PROMPT = (
    "Detect all prominent objects in the image. Return a JSON list where each entry has"
    ' "box_2d" as [ymin, xmin, ymax, xmax] normalised to 0-1000 and a "label".'
)
SEGMENT_PROMPT = (
    "Give the segmentation masks for the shapes. Output a JSON list where each entry"
    ' contains the 2D bounding box in "box_2d", the segmentation mask in key "mask",'
    ' and the text label in "label".'
)


def _tolerance(width: int, height: int, detection_px: float) -> float:
    # The 0-1000 grid itself rounds by up to half a step: W/2000 pixels.
    return detection_px + max(width, height) / 2000


def _assert_matches(
    items: list[dict[str, Any]], truth: list[Shape], size: tuple[int, int], px: float
) -> None:
    width, height = size
    by_label = {item["label"]: item for item in items}
    assert sorted(by_label) == sorted(s.label for s in truth)
    for shape in truth:
        error = box_error(by_label[shape.label], shape, width, height)
        assert error <= _tolerance(width, height, px), (shape, by_label[shape.label], error)


@pytest.mark.parametrize(
    ("seed", "size"),
    [(1, (640, 480)), (2, (1000, 800)), (3, (1200, 900)), (4, (300, 300)), (5, (800, 1200))],
)
def test_detection_png_boxes_match_ground_truth(
    client: genai.Client, seed: int, size: tuple[int, int]
) -> None:
    image, truth = random_scene(seed, width=size[0], height=size[1], count=4)
    reply = ask(client, encode(image, "PNG"), DETECT_PROMPT)
    _assert_matches(parse_json_reply(reply.text or ""), truth, size, px=1.0)


@pytest.mark.parametrize(
    ("seed", "size"), [(11, (640, 480)), (12, (1000, 800)), (13, (1200, 900)), (14, (480, 640))]
)
def test_detection_jpeg_boxes_match_ground_truth(
    client: genai.Client, seed: int, size: tuple[int, int]
) -> None:
    image, truth = random_scene(seed, width=size[0], height=size[1], count=4)
    reply = ask(client, encode(image, "JPEG", quality=90), DETECT_PROMPT, "image/jpeg")
    _assert_matches(parse_json_reply(reply.text or ""), truth, size, px=1.0)


def test_detection_webp(client: genai.Client) -> None:
    image, truth = random_scene(21, width=640, height=480, count=3)
    reply = ask(client, encode(image, "WEBP", quality=90), DETECT_PROMPT, "image/webp")
    _assert_matches(parse_json_reply(reply.text or ""), truth, (640, 480), px=1.0)


def test_detection_heic(client: genai.Client) -> None:
    image, truth = random_scene(22, width=640, height=480, count=3)
    reply = ask(client, encode(image, "HEIF", quality=90), DETECT_PROMPT, "image/heic")
    _assert_matches(parse_json_reply(reply.text or ""), truth, (640, 480), px=2.0)


def test_exif_rotated_jpeg_reports_upright_boxes(client: genai.Client) -> None:
    upright, truth = random_scene(31, width=640, height=480, count=3)
    # Orientation 6 = "rotate 90 degrees clockwise to display", so store it counter-clockwise.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", quality=90, exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).size == (480, 640)
    reply = ask(client, data, DETECT_PROMPT, "image/jpeg")
    _assert_matches(parse_json_reply(reply.text or ""), truth, (640, 480), px=1.0)


def test_plain_reply_is_fenced_and_json_mime_type_is_bare(client: genai.Client) -> None:
    image, _ = random_scene(41, count=2)
    data = encode(image)
    fenced = ask(client, data, DETECT_PROMPT).text or ""
    bare = (
        ask(
            client,
            data,
            DETECT_PROMPT,
            config=types.GenerateContentConfig(response_mime_type="application/json"),
        ).text
        or ""
    )
    assert fenced.startswith("```json\n") and fenced.endswith("\n```")
    assert bare.startswith("[")
    assert parse_json_reply(fenced) == parse_json_reply(bare)


def test_subject_phrase_filters_by_colour_and_kind(client: genai.Client) -> None:
    shapes = [
        Shape("rectangle", "red", (40, 40, 140, 120)),
        Shape("ellipse", "red", (200, 40, 300, 140)),
        Shape("triangle", "blue", (40, 200, 160, 320)),
    ]
    data = encode(draw_scene(400, 400, shapes))
    red = parse_json_reply(ask(client, data, "Detect the red shapes, with box_2d.").text or "")
    assert sorted(i["label"] for i in red) == ["red ellipse", "red rectangle"]
    circles = parse_json_reply(ask(client, data, "Find every circle. Use box_2d.").text or "")
    assert [i["label"] for i in circles] == ["red ellipse"]
    green = parse_json_reply(ask(client, data, "Detect the green shapes with box_2d.").text or "")
    assert green == []


def test_blank_image_has_no_detections(client: genai.Client) -> None:
    data = encode(draw_scene(320, 240, []))
    assert parse_json_reply(ask(client, data, DETECT_PROMPT).text or "") == []


MASK_PREFIX = "data:image/png;base64,"


def _decode_mask(text: str) -> Image.Image:
    # Callers must accept masks with and without the data-URL prefix.
    return Image.open(io.BytesIO(base64.b64decode(text.removeprefix(MASK_PREFIX))))


def test_segmentation_masks_decode_and_fit_their_shapes(client: genai.Client) -> None:
    shapes = [
        Shape("rectangle", "green", (30, 40, 190, 140)),
        Shape("ellipse", "orange", (240, 60, 380, 220)),
        Shape("rectangle", "blue", (30, 200, 130, 280)),
    ]
    width, height = 420, 300
    items = parse_json_reply(
        ask(client, encode(draw_scene(width, height, shapes)), SEGMENT_PROMPT).text or ""
    )
    assert [i["label"] for i in items] == ["green rectangle", "orange ellipse", "blue rectangle"]
    for item, shape in zip(items, shapes, strict=True):
        mask = _decode_mask(item["mask"])
        assert mask.mode == "L"
        assert mask.size != (shape.width, shape.height)  # callers must resize
        # Resize to the box and threshold at 127, as the worker does.
        binary = mask.resize((shape.width, shape.height)).point(lambda v: 255 if v > 127 else 0)
        fill = binary.histogram()[255] / (shape.width * shape.height)
        expected = 1.0 if shape.kind == "rectangle" else 0.785
        assert abs(fill - expected) < 0.05, (shape, fill)


def test_segmentation_mask_prefix_alternates_by_index(client: genai.Client) -> None:
    image, _ = random_scene(51, count=5)
    items = parse_json_reply(ask(client, encode(image), SEGMENT_PROMPT).text or "")
    assert len(items) == 5
    prefixed = [item["mask"].startswith(MASK_PREFIX) for item in items]
    assert prefixed == [True, False, True, False, True]
    for item in items:
        assert _decode_mask(item["mask"]).format == "PNG"


def test_tiny_box_mask_is_not_box_sized() -> None:
    from visionq.emulator.answers import mask_size

    assert mask_size(8, 8) != (8, 8)
    assert mask_size(4, 30) != (4, 30)
    assert mask_size(200, 100) == (100, 50)
