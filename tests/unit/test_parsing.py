import pytest

from visionq.vision.parsing import AnswerParseError, extract_json, parse_detections, parse_label


def test_plain_json() -> None:
    assert extract_json('[{"a": 1}]') == [{"a": 1}]


def test_fenced_json_with_prose_around_it() -> None:
    text = 'Here are the objects:\n```json\n[{"box_2d": [0, 0, 10, 10], "label": "x"}]\n```\nDone.'
    assert extract_json(text) == [{"box_2d": [0, 0, 10, 10], "label": "x"}]


def test_fence_without_language_tag() -> None:
    assert extract_json('```\n{"k": "v"}\n```') == {"k": "v"}


def test_json_embedded_in_prose() -> None:
    assert extract_json("The answer is [1, 2, 3] as requested.") == [1, 2, 3]


@pytest.mark.parametrize("text", ["", "no json here", '```json\n[{"a": 1,}\n```', "[1, 2"])
def test_malformed_answers_raise(text: str) -> None:
    with pytest.raises(AnswerParseError):
        extract_json(text)


def test_detections_convert_boxes_and_count_bad_items() -> None:
    text = """```json
    [
      {"box_2d": [100, 200, 300, 400], "label": "red rectangle"},
      {"box_2d": [0, 0, 0, 0], "label": "empty"},
      {"label": "no box"},
      "garbage",
      {"box_2d": [500, 500, 1000, 1000]}
    ]
    ```"""
    result = parse_detections(text, 1000, 500)
    assert result["objects"] == [
        {"label": "red rectangle", "box_2d": [100, 200, 300, 400], "box": [200, 50, 400, 150]},
        {"label": "", "box_2d": [500, 500, 1000, 1000], "box": [500, 250, 1000, 500]},
    ]
    assert result["skipped"] == 3
    assert result["image"] == {"width": 1000, "height": 500}


def test_detections_wrapped_in_an_object() -> None:
    result = parse_detections('{"objects": [{"box_2d": [0, 0, 500, 500], "label": "a"}]}', 10, 10)
    assert result["objects"][0]["box"] == [0, 0, 5, 5]


def test_detections_that_are_not_a_list_raise() -> None:
    with pytest.raises(AnswerParseError):
        parse_detections('"a string"', 10, 10)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("cat", "cat"),
        ("  Cat.\n", "cat"),
        ('"dog"', "dog"),
        ("The image shows a dog.", "dog"),
        ('{"label": "Red Car"}', "red car"),
        ("`red car`", "red car"),
    ],
)
def test_label_matching(answer: str, expected: str) -> None:
    assert parse_label(answer, ["cat", "dog", "red car"]) == expected


@pytest.mark.parametrize("answer", ["a bird", "cat or dog", ""])
def test_label_not_found_or_ambiguous(answer: str) -> None:
    with pytest.raises(AnswerParseError):
        parse_label(answer, ["cat", "dog"])
