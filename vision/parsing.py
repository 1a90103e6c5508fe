"""Read the model's text answers: JSON (fenced or not), detections, a chosen label."""

from __future__ import annotations

import json
import re
from typing import Any

from visionq.vision.boxes import InvalidBoxError, box_2d_to_pixels
from visionq.vision.errors import FixedCodeError

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class AnswerParseError(FixedCodeError, ValueError):
    """The model's answer does not have the shape the task asked for (no JSON, boxes or
    labels it should hold, an empty text): the job fails, its answer unread."""

    codes = frozenset({"unparseable_answer"})


def extract_json(text: str) -> Any:
    """Parse JSON from an answer that may wrap it in a ```json fence or in prose."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        try:
            return json.loads(candidate.strip())
        except json.JSONDecodeError:
            continue
    # Last resort: the outermost [...] or {...} in the text.
    for opener, closer in (("[", "]"), ("{", "}")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            try:
                return json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                continue
    raise AnswerParseError(f"the answer is not JSON: {_preview(text)}")


def _preview(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def detection_items(data: Any) -> list[Any]:
    """The list of items in a detection-style answer (bare, or wrapped in one key)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        # Some answers wrap the list: {"objects": [...]} or similar.
        lists = [value for value in data.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0]
        if "box_2d" in data:
            return [data]
    raise AnswerParseError(f"expected a JSON list of objects, got: {_preview(json.dumps(data))}")


def parse_detections(text: str, width: int, height: int) -> dict[str, Any]:
    """Detected objects with box_2d as returned and box in pixels; bad items are counted."""
    objects: list[dict[str, Any]] = []
    skipped = 0
    for item in detection_items(extract_json(text)):
        if not isinstance(item, dict) or "box_2d" not in item:
            skipped += 1
            continue
        try:
            box = box_2d_to_pixels(item["box_2d"], width, height)
        except InvalidBoxError:
            skipped += 1
            continue
        label = item.get("label")
        objects.append(
            {
                "label": str(label) if label is not None else "",
                "box_2d": item["box_2d"],
                "box": list(box),
            }
        )
    return {"objects": objects, "skipped": skipped, "image": {"width": width, "height": height}}


def _normalise_label(text: str) -> str:
    return " ".join(text.strip().strip("`'\".!").split()).casefold()


def parse_label(text: str, labels: list[str]) -> str:
    """The one label of ``labels`` the answer names, exactly or as the only one it contains."""
    answer = _normalise_label(text)
    by_key = {_normalise_label(label): label for label in labels}
    if answer in by_key:
        return by_key[answer]
    try:
        decoded = extract_json(text)
    except AnswerParseError:
        decoded = None
    if isinstance(decoded, str | dict):
        value = decoded if isinstance(decoded, str) else decoded.get("label")
        if isinstance(value, str) and _normalise_label(value) in by_key:
            return by_key[_normalise_label(value)]
    mentioned = [
        label
        for key, label in by_key.items()
        if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", answer)
    ]
    if len(mentioned) == 1:
        return mentioned[0]
    raise AnswerParseError(
        f"the answer names {'several' if mentioned else 'none'} of the labels "
        f"{labels}: {_preview(text)}"
    )
