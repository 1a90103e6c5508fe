"""The deterministic vision and the scene generator, without HTTP."""

from __future__ import annotations

import pytest
from PIL import Image

from visionq.emulator.scene import analyse, analyse_bytes, classify_fill, image_size, load_image
from visionq.emulator.shapes import Shape, draw_scene, encode, random_scene


@pytest.mark.parametrize("seed", range(12))
def test_png_boxes_are_pixel_exact(seed: int) -> None:
    width, height = [(640, 480), (1000, 800), (1200, 900), (300, 300)][seed % 4]
    image, truth = random_scene(seed, width=width, height=height, count=4)
    facts = analyse_bytes(encode(image))
    found = {s.label: s.box for s in facts.shapes}
    assert sorted(found) == sorted(s.label for s in truth)
    for shape in truth:
        error = max(abs(a - b) for a, b in zip(found[shape.label], shape.box, strict=True))
        assert error <= 1, (shape, found[shape.label])
        if shape.kind != "triangle":
            assert found[shape.label] == shape.box


def test_large_image_rectangles_and_ellipses_exact() -> None:
    shapes = [
        Shape("rectangle", "purple", (100, 120, 900, 700)),
        Shape("ellipse", "cyan", (1000, 900, 1900, 1950)),
        Shape("rectangle", "black", (1500, 100, 1531, 131)),
    ]
    facts = analyse(draw_scene(2000, 2000, shapes))
    assert [(s.label, s.box) for s in facts.shapes] == [
        ("black rectangle", (1500, 100, 1531, 131)),
        ("purple rectangle", (100, 120, 900, 700)),
        ("cyan ellipse", (1000, 900, 1900, 1950)),
    ]


def test_areas_and_kinds() -> None:
    shape = Shape("rectangle", "red", (10, 20, 110, 70))
    facts = analyse(draw_scene(200, 100, [shape]))
    assert facts.synthetic and facts.background == "white"
    assert facts.shapes[0].area == 100 * 50
    assert [classify_fill(f) for f in (1.0, 0.95, 0.785, 0.5)] == [
        "rectangle",
        "rectangle",
        "ellipse",
        "triangle",
    ]


def test_non_white_background() -> None:
    image = draw_scene(300, 200, [Shape("ellipse", "yellow", (50, 50, 150, 150))], "black")
    facts = analyse(image)
    assert facts.background == "black"
    assert [(s.label, s.box) for s in facts.shapes] == [("yellow ellipse", (50, 50, 150, 150))]
    assert facts.brightness_word == "dark"


def test_exif_orientation_is_applied() -> None:
    upright = draw_scene(300, 200, [Shape("rectangle", "red", (10, 20, 60, 40))])
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())
    assert image_size(data) == (300, 200)
    assert load_image(data).size == (300, 200)
    assert [s.box for s in analyse_bytes(data).shapes] == [(10, 20, 60, 40)]


def test_random_scene_is_reproducible_with_distinct_labels() -> None:
    first_image, first = random_scene(99, width=800, height=600, count=6)
    second_image, second = random_scene(99, width=800, height=600, count=6)
    assert first == second
    assert first_image.tobytes() == second_image.tobytes()
    assert len({s.label for s in first}) == 6
    assert all(s.width >= 30 and s.height >= 30 for s in first)


def test_random_scene_refuses_impossible_requests() -> None:
    with pytest.raises(ValueError, match="cannot place"):
        random_scene(1, width=100, height=100, count=20)
