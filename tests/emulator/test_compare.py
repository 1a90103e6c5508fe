"""Compare answers for prompts with two or more images."""

from __future__ import annotations

import pytest
from google import genai

from tests.emulator.conftest import MODEL
from tests.emulator.helpers import image_part, parts
from visionq.emulator.compare import asks_to_compare
from visionq.emulator.shapes import Shape, draw_scene, encode

FIRST = encode(
    draw_scene(
        640,
        480,
        [
            Shape("rectangle", "red", (40, 40, 200, 160)),
            Shape("ellipse", "blue", (300, 60, 420, 180)),
            Shape("triangle", "green", (100, 260, 260, 420)),
        ],
    )
)
SECOND = encode(
    draw_scene(
        320,
        240,
        [
            Shape("rectangle", "red", (20, 20, 100, 80)),
            Shape("ellipse", "cyan", (150, 60, 250, 160)),
        ],
    )
)
PREFIX = "[synthetic comparison, emulator] "


def _ask(client: genai.Client, prompt: str, *images: bytes) -> str:
    contents = parts(*[image_part(data) for data in images], prompt)
    return client.models.generate_content(model=MODEL, contents=contents).text or ""


def test_two_images_both_and_only(client: genai.Client) -> None:
    text = _ask(client, "Compare these two images.", FIRST, SECOND)
    assert text == (
        PREFIX + "Image 1 (640x480) has 3 shapes, image 2 (320x240) has 2 shapes."
        " Both: red rectangle."
        " Only in image 1: blue ellipse and green triangle."
        " Only in image 2: cyan ellipse."
        " Sizes differ: 640x480 vs 320x240."
        " The red rectangle is 160x120 in image 1 and 80x60 in image 2."
        " The shapes differ."
    )


def test_identical_images_are_the_same(client: genai.Client) -> None:
    text = _ask(client, "Are these the same?", FIRST, FIRST)
    assert text.startswith(PREFIX)
    assert "Both: blue ellipse, green triangle and red rectangle." in text
    assert "Only in image 1: nothing. Only in image 2: nothing." in text
    assert "Both images are 640x480." in text
    assert text.endswith("Same shapes in every image.")


def test_three_images(client: genai.Client) -> None:
    third = encode(draw_scene(320, 240, [Shape("rectangle", "red", (10, 10, 90, 70))]))
    text = _ask(client, "What are the differences?", FIRST, SECOND, third)
    assert "image 3 (320x240) has 1 shape." in text
    assert "In all images: red rectangle." in text
    assert "Only in image 1: blue ellipse and green triangle." in text
    assert "Only in image 3: nothing." in text


def test_duplicates_count_as_multisets(client: genai.Client) -> None:
    two_reds = encode(
        draw_scene(
            320,
            240,
            [
                Shape("rectangle", "red", (20, 20, 100, 80)),
                Shape("rectangle", "red", (200, 20, 280, 80)),
            ],
        )
    )
    text = _ask(client, "How do they differ?", two_reds, SECOND)
    assert "Both: red rectangle." in text
    assert "Only in image 1: red rectangle." in text


@pytest.mark.parametrize(
    ("prompt", "images", "expected"),
    [
        ("Compare them.", 2, True),
        ("What is different between them?", 2, True),
        ("Spot the differences", 3, True),
        ("Are both the same size?", 2, True),
        ("Compare this image with your expectations.", 1, False),
        ("Describe these images.", 2, False),
        ("Is the sameness... no: samey", 2, False),
    ],
)
def test_what_asks_for_a_comparison(prompt: str, images: int, expected: bool) -> None:
    assert asks_to_compare(prompt, images) is expected


def test_single_image_compare_prompt_is_a_normal_answer(client: genai.Client) -> None:
    text = _ask(client, "Compare the shapes in this image.", FIRST)
    assert not text.startswith(PREFIX)
    assert text.startswith("[synthetic answer, emulator] ")


def test_photos_have_no_shapes_to_compare(client: genai.Client) -> None:
    from PIL import Image

    dark = Image.linear_gradient("L").resize((200, 150)).convert("RGB")
    photo = encode(Image.blend(dark, Image.effect_noise((200, 150), 60).convert("RGB"), 0.5))
    text = _ask(client, "Compare these.", photo, photo)
    assert "image 1 (200x150) is a photo" in text.lower()
    assert "No shapes in any image; mean colours:" in text
