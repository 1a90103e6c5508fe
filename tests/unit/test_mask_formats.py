"""The three segmentation-mask formats Gemini has used, each to the same binary PNG mask:
base64 PNG probability maps, ``<start_of_mask><seg_N>...`` tokens and polygons."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable

import pytest
from PIL import Image

from visionq.vision.masks import InvalidMaskError, decode_mask, parse_segments
from visionq.vision.parsing import AnswerParseError


def _pixels(mask_png: bytes) -> list[list[int]]:
    """The mask as rows of 0/1, checking it is a binary PNG."""
    image = Image.open(io.BytesIO(mask_png))
    assert image.format == "PNG" and image.mode == "1"
    width = image.width
    data = [1 if value else 0 for value in image.convert("L").tobytes()]
    return [data[row * width : (row + 1) * width] for row in range(image.height)]


def _tokens(bitmap: list[list[int]], *, end: bool = True) -> str:
    """A 64x64 bitmap as Gemini 2.5's mask tokens: a byte per token, MSB leftmost."""
    values = []
    for row in bitmap:
        for start in range(0, 64, 8):
            byte = 0
            for bit in row[start : start + 8]:
                byte = byte << 1 | bit
            values.append(byte)
    body = "".join(f"<seg_{value}>" for value in values)
    return "<start_of_mask>" + body + ("<end_of_mask>" if end else "")


def _runs(bitmap: list[list[int]]) -> str:
    """A 64x64 bitmap as run-length mask tokens: row-major, outside first, summing to 4096."""
    cells = [cell for row in bitmap for cell in row]
    runs, current, length = [], 0, 0
    for cell in cells:
        if cell == current:
            length += 1
        else:
            runs.append(length)
            current, length = cell, 1
    runs.append(length)
    return "<start_of_mask>" + "".join(f"<seg_{n}>" for n in runs) + "<end_of_mask>"


def _bitmap(inside: Callable[[int, int], bool]) -> list[list[int]]:
    return [[1 if inside(x, y) else 0 for x in range(64)] for y in range(64)]


def test_run_length_mask_tokens_decode_cell_for_cell_at_the_box_size() -> None:
    # Rows 8-15, columns 3-12: runs 515, 10, 54, 10, ... (outside first).
    bitmap = _bitmap(lambda x, y: 8 <= y < 16 and 3 <= x < 13)
    tokens = _runs(bitmap)
    assert tokens.startswith("<start_of_mask><seg_515><seg_10><seg_54><seg_10>")
    mask_png, area = decode_mask(tokens, (100, 50, 164, 114))
    assert _pixels(mask_png) == bitmap and area == 80
    # Scaled to a box twice as wide and half as high, without the end marker.
    left = _runs(_bitmap(lambda x, y: x < 32)).removesuffix("<end_of_mask>")
    mask_png, area = decode_mask(left, (0, 0, 128, 32))
    assert _pixels(mask_png) == [[1 if x < 64 else 0 for x in range(128)] for _ in range(32)]


def test_run_length_tokens_starting_inside_begin_with_an_empty_run() -> None:
    tokens = "<start_of_mask><seg_0><seg_2><seg_4094><end_of_mask>"
    rows = _pixels(decode_mask(tokens, (0, 0, 64, 64))[0])
    assert rows[0][:3] == [1, 1, 0] and sum(map(sum, rows)) == 2
    full = _pixels(decode_mask("<start_of_mask><seg_0><seg_4096>", (0, 0, 64, 64))[0])
    assert full == [[1] * 64 for _ in range(64)]


def test_byte_mask_tokens_decode_bit_for_bit_at_the_box_size() -> None:
    # Rows 8-15, columns 3-12 set: bytes cross token boundaries, MSB first.
    bitmap = _bitmap(lambda x, y: 8 <= y < 16 and 3 <= x < 13)
    mask_png, area = decode_mask(_tokens(bitmap), (100, 50, 164, 114))
    assert _pixels(mask_png) == bitmap
    assert area == 8 * 10


def test_mask_tokens_without_end_marker_and_scaled_to_a_bigger_box() -> None:
    # Left half set; a 128x32 box doubles the width and halves the height.
    bitmap = _bitmap(lambda x, y: x < 32)
    mask_png, area = decode_mask(_tokens(bitmap, end=False), (0, 0, 128, 32))
    expected = [[1 if x < 64 else 0 for x in range(128)] for _ in range(32)]
    assert _pixels(mask_png) == expected
    assert area == 64 * 32


def test_one_token_is_eight_pixels() -> None:
    # The first token is 0b10100000: pixels 0 and 2 of the first row.
    tokens = "<start_of_mask><seg_160>" + "<seg_0>" * 511 + "<end_of_mask>"
    rows = _pixels(decode_mask(tokens, (0, 0, 64, 64))[0])
    assert rows[0][:8] == [1, 0, 1, 0, 0, 0, 0, 0]
    assert sum(map(sum, rows)) == 2


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        # Seen in google-gemini/cookbook#798: 16 VQ-VAE codewords, not a bitmap.
        (
            "<start_of_mask><seg_35><seg_65><seg_4><seg_66><seg_3><seg_94><seg_77><seg_34>"
            "<seg_42><seg_51><seg_27><seg_3><seg_73><seg_50><seg_42><seg_22>",
            "VQ-VAE",
        ),
        ("<start_of_mask>" + "<seg_1>" * 100, "100 mask tokens summing to 100"),
        ("<start_of_mask><seg_4000><seg_95>", "summing to 4095: run lengths"),
        ("<start_of_mask>" + "<seg_1>" * 511 + "<seg_256>", "512 byte tokens"),
        ("<start_of_mask>" + "<seg_1>" * 511 + "oops<seg_1>", "other text"),
        ("<start_of_mask>", "0 mask tokens"),
    ],
)
def test_mask_tokens_that_are_not_a_bitmap_are_refused(tokens: str, message: str) -> None:
    with pytest.raises(InvalidMaskError, match=message):
        decode_mask(tokens, (0, 0, 10, 10))


def test_polygon_is_filled_inside_its_box_in_image_coordinates() -> None:
    # Image 200x100; box_2d [100, 100, 900, 900] is pixels (20, 10)-(180, 90).
    # The square [x, y] 250..750 x 300..700 has its corners at pixels 50..150 x 30..70,
    # i.e. 30..130 x 20..60 in the box: it covers the pixels whose centres are within.
    square = [[250, 300], [750, 300], [750, 700], [250, 700]]
    mask_png, area = decode_mask(square, (20, 10, 180, 90), (200, 100))
    expected = [[1 if 30 <= x < 130 and 20 <= y < 60 else 0 for x in range(160)]
                for y in range(80)]  # fmt: skip
    assert _pixels(mask_png) == expected
    assert area == 100 * 40


def test_polygon_is_cut_at_the_box_and_rings_are_all_filled() -> None:
    # Image 100x100, box (0, 0)-(50, 50). The triangle (0, 0), (90, 0), (0, 90) in pixels
    # reaches past the box: a pixel is in when its centre is, x + y + 1 <= 90.
    triangle = [[0, 0], [900, 0], [0, 900]]
    ring = [[100, 600], [200, 600], [200, 700]]
    mask_png, _ = decode_mask([triangle, ring], (0, 0, 50, 50), (100, 100))
    assert _pixels(mask_png) == [[1 if x + y <= 89 else 0 for x in range(50)] for y in range(50)]
    # The box (0, 55)-(50, 75) shows both: the triangle's tip (x + y + 55 <= 89) and the
    # ring (10, 60), (20, 60), (20, 70) in pixels: rows 5-14, from its diagonal to x 19.
    other, area = decode_mask([triangle, ring], (0, 55, 50, 75), (100, 100))
    expected = [[1 if x + y <= 34 or (5 <= y <= 14 and y + 5 <= x <= 19) else 0
                 for x in range(50)] for y in range(20)]  # fmt: skip
    assert _pixels(other) == expected and area == sum(map(sum, expected))
    _, area = decode_mask(ring, (0, 55, 50, 75), (100, 100))
    assert area == sum(range(1, 11))


@pytest.mark.parametrize(
    "polygon",
    [
        [[10, 10], [20, 20]],
        [[10, 10], [20, 20], [30, "x"]],
        [[10, 10], [20, 20], [30, True]],
        [[10, 10], [20, 20], [3000, 30]],
        [[10, 10, 5], [20, 20], [30, 30]],
        [[]],
    ],
)
def test_bad_polygons_are_refused(polygon: list[object]) -> None:
    with pytest.raises(InvalidMaskError):
        decode_mask(polygon, (0, 0, 10, 10), (100, 100))


def _png(size: tuple[int, int], left_inside: int) -> str:
    image = Image.new("L", size, 30)
    image.paste(230, (0, 0, left_inside, size[1]))
    out = io.BytesIO()
    image.save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_the_three_formats_give_the_same_mask() -> None:
    # A 64x64 box in a 640x640 image (box_2d 100..200): its left half is the object.
    box_2d = [100, 100, 200, 200]
    items = [
        {"box_2d": box_2d, "label": "png", "mask": _png((16, 16), 8)},
        {"box_2d": box_2d, "label": "tokens", "mask": _runs(_bitmap(lambda x, y: x < 32))},
        # x 100..150 (corners at pixels 64..96: columns 0-31 of the box), y 100..200.
        {"box_2d": box_2d, "label": "polygon",
         "mask": [[100, 100], [150, 100], [150, 200], [100, 200]]},
    ]  # fmt: skip
    segments, skipped = parse_segments(json.dumps(items), 640, 640)
    assert skipped == 0 and [s.label for s in segments] == ["png", "tokens", "polygon"]
    png, tokens, polygon = (_pixels(s.mask_png) for s in segments)
    half = [[1 if x < 32 else 0 for x in range(64)] for _ in range(64)]
    assert png == half and tokens == half and polygon == half


def test_every_item_unusable_is_a_bad_answer_naming_why() -> None:
    items = [{"box_2d": [0, 0, 500, 500], "mask": "<start_of_mask><seg_1><seg_2>"}]
    with pytest.raises(AnswerParseError, match="2 mask tokens summing to 3"):
        parse_segments(json.dumps(items), 100, 100)
