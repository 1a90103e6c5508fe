import base64
import io

import pytest
from PIL import Image

from visionq.vision.masks import InvalidMaskError, decode_mask, parse_segments
from visionq.vision.parsing import AnswerParseError
from visionq.vision.structured import (
    InvalidSchemaError,
    SchemaMismatchError,
    check_schema,
    parse_structured,
)


def png_b64(size: tuple[int, int], value: int = 255) -> str:
    out = io.BytesIO()
    Image.new("L", size, value).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_mask_is_resized_to_its_box_and_thresholded() -> None:
    # A 10x10 map: left half 200 (inside), right half 50 (outside).
    image = Image.new("L", (10, 10), 50)
    image.paste(200, (0, 0, 5, 10))
    out = io.BytesIO()
    image.save(out, "PNG")
    encoded = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    mask_png, area = decode_mask(encoded, (100, 100, 140, 120))
    mask = Image.open(io.BytesIO(mask_png))
    assert mask.size == (40, 20) and mask.mode == "1"
    assert area == 20 * 20


def test_empty_or_huge_masks_are_invalid() -> None:
    with pytest.raises(InvalidMaskError):
        decode_mask(png_b64((4, 4)), (5, 5, 5, 9))
    with pytest.raises(InvalidMaskError):
        decode_mask(png_b64((5000, 4000)), (0, 0, 10, 10))
    with pytest.raises(InvalidMaskError):
        decode_mask("not base64 at all!", (0, 0, 10, 10))


def test_bad_segments_are_skipped_and_counted() -> None:
    good = {"box_2d": [0, 0, 500, 500], "label": "a", "mask": png_b64((8, 8))}
    tiny = {"box_2d": [0, 0, 1, 1], "label": "b", "mask": png_b64((8, 8))}
    no_mask = {"box_2d": [0, 0, 500, 500], "label": "c"}
    import json

    segments, skipped = parse_segments(json.dumps([good, tiny, no_mask]), 100, 100)
    assert [s.label for s in segments] == ["a"] and skipped == 2
    with pytest.raises(AnswerParseError):
        parse_segments(json.dumps([tiny, no_mask]), 100, 100)


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "http://169.254.169.254/latest"},
        {"properties": {"a": {"$ref": "file:///etc/passwd"}}},
        {"type": "nonsense"},
        ["not", "an", "object"],
    ],
)
def test_unsafe_or_invalid_schemas_are_refused(schema: object) -> None:
    with pytest.raises(InvalidSchemaError):
        check_schema(schema)


def test_local_refs_work_and_mismatch_is_reported() -> None:
    schema = check_schema(
        {
            "type": "object",
            "properties": {"n": {"$ref": "#/$defs/n"}},
            "required": ["n"],
            "$defs": {"n": {"type": "integer"}},
        }
    )
    assert parse_structured('```json\n{"n": 3}\n```', schema) == {"n": 3}
    with pytest.raises(SchemaMismatchError, match="n"):
        parse_structured('{"n": "three"}', schema)
