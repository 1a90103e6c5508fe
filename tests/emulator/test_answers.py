"""Classification, captions, questions and structured output, through the SDK."""

from __future__ import annotations

import json
import random

from google import genai
from google.genai import types
from PIL import Image

from tests.emulator.conftest import MODEL
from tests.emulator.helpers import ask, image_part, parts
from visionq.emulator.shapes import Shape, draw_scene, encode

SHAPES = [
    Shape("rectangle", "red", (40, 40, 200, 160)),
    Shape("ellipse", "blue", (300, 60, 420, 180)),
    Shape("triangle", "green", (100, 260, 260, 420)),
]
SCENE = encode(draw_scene(640, 480, SHAPES))


def _photo(seed: int = 0) -> bytes:
    # Smooth gradient plus noise: far from any palette colour, like a photograph.
    rng = random.Random(seed)
    image = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    noise = Image.new("RGB", image.size)
    noise.putdata(
        [
            (rng.randrange(60), rng.randrange(120), rng.randrange(90))
            for _ in range(image.width * image.height)
        ]
    )
    return encode(Image.blend(image, noise, 0.5), "JPEG", quality=85)


def test_classification_picks_the_matching_label(client: genai.Client) -> None:
    prompt = (
        'Classify this image. Answer with exactly one label from ["three shapes",'
        ' "one yellow square", "a photo of a dog"] and nothing else.'
    )
    assert ask(client, SCENE, prompt).text == "three shapes"
    single = encode(draw_scene(320, 240, [Shape("rectangle", "yellow", (50, 50, 150, 150))]))
    assert ask(client, single, prompt).text == "one yellow square"
    assert ask(client, _photo(), prompt, "image/jpeg").text == "a photo of a dog"


def test_classification_tie_goes_to_the_first_label(client: genai.Client) -> None:
    prompt = 'Pick one of ["alpha", "beta"].'
    assert ask(client, SCENE, prompt).text == "alpha"


def test_caption_mentions_count_colours_and_synthetic(client: genai.Client) -> None:
    text = ask(client, SCENE, "Write a one-sentence caption for this image.").text or ""
    assert text.startswith("[synthetic caption, emulator] ")
    assert "640x480" in text and "3 shapes" in text and "white background" in text
    for shape in SHAPES:
        assert shape.label in text


def test_caption_of_a_photo_states_measurable_facts(client: genai.Client) -> None:
    text = ask(client, _photo(), "Describe this image.", "image/jpeg").text or ""
    assert "synthetic" in text.lower()
    assert "320x240 photo" in text


def test_questions(client: genai.Client) -> None:
    how_many = ask(client, SCENE, "How many shapes are in the picture?").text or ""
    assert "3 (" in how_many and "synthetic" in how_many.lower()
    red = ask(client, SCENE, "How many red shapes are there?").text or ""
    assert "] 1 (red rectangle)" in red
    colours = ask(client, SCENE, "Which colors do you see?").text or ""
    assert all(c in colours for c in ("red", "blue", "green"))
    size = ask(client, SCENE, "What are the dimensions?").text or ""
    assert "640x480 pixels" in size


def test_several_images_are_described_one_by_one(client: genai.Client) -> None:
    other = encode(draw_scene(200, 100, [Shape("ellipse", "cyan", (20, 10, 80, 70))]))
    reply = client.models.generate_content(
        model=MODEL,
        contents=parts(image_part(SCENE), image_part(other), "Describe these images."),
    )
    text = reply.text or ""
    assert "Image 1: a 640x480 image with 3 shapes" in text
    assert "Image 2: a 200x100 image with 1 shape" in text and "cyan ellipse" in text


def test_structured_output_fits_the_schema(client: genai.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "count": {"type": "integer"},
            "objects": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"label": {"type": "string"}, "color": {"type": "string"}},
                },
            },
            "tone": {"type": "string", "enum": ["dark", "bright"]},
        },
    }
    reply = ask(
        client,
        SCENE,
        "Summarise the image.",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema
        ),
    )
    value = json.loads(reply.text or "")
    assert value["count"] == 3
    assert [o["label"] for o in value["objects"]] == [s.label for s in SHAPES]
    assert [o["color"] for o in value["objects"]] == [s.color for s in SHAPES]
    assert value["tone"] == "bright"
    assert "synthetic" in value["summary"].lower()


def test_openapi_response_schema(client: genai.Client) -> None:
    schema = types.Schema(
        type=types.Type.OBJECT,
        properties={"width": types.Schema(type=types.Type.INTEGER)},
    )
    reply = ask(
        client,
        SCENE,
        "How wide?",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=schema
        ),
    )
    assert json.loads(reply.text or "") == {"width": 640}


def test_streaming_returns_the_whole_answer(client: genai.Client) -> None:
    chunks = list(
        client.models.generate_content_stream(
            model=MODEL, contents=parts(image_part(SCENE), "Write a caption.")
        )
    )
    assert "3 shapes" in "".join(c.text or "" for c in chunks)


def test_system_instruction_is_read(client: genai.Client) -> None:
    reply = ask(
        client,
        SCENE,
        "Find the blue ones.",
        config=types.GenerateContentConfig(
            system_instruction="Answer with box_2d JSON.", response_mime_type="application/json"
        ),
    )
    assert [item["label"] for item in json.loads(reply.text or "")] == ["blue ellipse"]


def _tinted_photo(tint: tuple[int, int, int], spread: int, seed: int) -> bytes:
    # Noise around a tint: far from every palette colour, so it reads as a photograph.
    rng = random.Random(seed)
    image = Image.new("RGB", (160, 120))
    image.putdata(
        [
            tuple(max(0, min(255, c + rng.randrange(-spread, spread + 1))) for c in tint)
            for _ in range(160 * 120)
        ]
    )
    return encode(image, "JPEG", quality=90)


PHOTO_LABELS = [
    "a dark night scene",
    "a bright snowy scene",
    "a green forest",
    "a blue sky or sea",
    "a black and white photo",
    "a warm sunset",
]


def test_photos_are_classified_by_what_can_be_measured(client: genai.Client) -> None:
    """Issue 17: every photograph was classified with the first label ("an astronaut").
    The label now follows the photo's brightness, hue and saturation (emulator/classify.py)."""
    photos = {
        "a dark night scene": _tinted_photo((30, 30, 40), 20, 1),
        "a bright snowy scene": _tinted_photo((235, 235, 240), 15, 2),
        "a green forest": _tinted_photo((40, 140, 50), 40, 3),
        "a blue sky or sea": _tinted_photo((60, 110, 200), 40, 4),
        "a black and white photo": _tinted_photo((128, 128, 128), 70, 5),
        "a warm sunset": _tinted_photo((220, 120, 40), 40, 6),
    }
    prompt = f"Classify this image. Reply with one label from {json.dumps(PHOTO_LABELS)}."
    for expected, data in photos.items():
        assert ask(client, data, prompt, "image/jpeg").text == expected


def test_labels_nothing_measurable_tells_apart_follow_brightness(client: genai.Client) -> None:
    """Subjects only Gemini can see score alike: the labels are read from darkest to
    brightest, so a dark and a bright photo get different ones (not always the first)."""
    prompt = 'Classify this image. Reply with one label from ["an astronaut", "a cat", "a rocket"].'
    dark = ask(client, _tinted_photo((25, 20, 30), 20, 7), prompt, "image/jpeg").text
    bright = ask(client, _tinted_photo((225, 220, 230), 20, 8), prompt, "image/jpeg").text
    assert (dark, bright) == ("an astronaut", "a rocket")
