"""Read the prompt like a model would, and answer it from the measured scene facts.

Every answer is derived from measurable properties (scene.py) and text answers say that
they are synthetic, so nobody mistakes emulator output for a real model's judgement.

Segmentation masks come in the format the model's catalogue entry names (masks.py). The
``png`` format is deliberately awkward, as real masks can be: each mask is a grayscale
PNG probability map at a resolution different from its box (callers must resize it to
the box and threshold at 127), and the ``data:image/png;base64,`` prefix is present on
items 0, 2, 4... of the list and absent on items 1, 3, 5..., so callers must accept both.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from PIL import Image

from visionq.emulator.classify import photo_label
from visionq.emulator.compare import asks_to_compare, compare_answer
from visionq.emulator.masks import polygon, seg_tokens
from visionq.emulator.request import GenerateRequest
from visionq.emulator.scene import DetectedShape, SceneFacts
from visionq.emulator.schema_fill import break_schema, fill_schema
from visionq.emulator.shapes import PALETTE, encode

# Short, so a one-line summary still shows the answer; unmistakable all the same.
SYNTHETIC_PREFIX = "[synthetic {what}, emulator] "
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
KIND_WORDS: dict[str, str] = {
    "rectangle": "rectangle",
    "square": "rectangle",
    "ellipse": "ellipse",
    "circle": "ellipse",
    "oval": "ellipse",
    "triangle": "triangle",
}
COLOR_ALIASES: dict[str, str] = {"grey": "gray", "violet": "purple", "pink": "magenta"}
SUBJECT_VERBS = ("detect", "find", "locate", "segment", "identify", "point", "mark", "outline")
MASK_SIDE_DIVISOR = 2
MIN_MASK_SIDE = 8
MASK_PREFIX = "data:image/png;base64,"


def words(text: str) -> list[str]:
    """Lower-case words with a plural ``s`` dropped ("shapes" -> "shape")."""
    found = re.findall(r"[a-z0-9]+", text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in found]


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def json_list(items: Sequence[dict[str, Any]]) -> str:
    """A JSON list with one item per line, the way Gemini lays out detections."""
    if not items:
        return "[]"
    return "[\n" + ",\n".join("  " + json.dumps(item) for item in items) + "\n]"


def _count_word(count: int) -> str:
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)


# --- what the prompt asks about -------------------------------------------------------


def mentioned_colors(text: str) -> set[str]:
    """Palette colour names in ``text`` (with a few common aliases)."""
    result = set()
    for word in words(text):
        name = COLOR_ALIASES.get(word, word)
        if name in PALETTE:
            result.add(name)
    return result


def mentioned_kinds(text: str) -> set[str]:
    """Shape kinds in ``text`` ("circles" counts as ellipse)."""
    return {KIND_WORDS[w] for w in words(text) if w in KIND_WORDS}


def subject_phrase(text: str) -> str:
    """The first sentence that says what to find ("Detect the red shapes"), else ""."""
    for sentence in re.split(r"[.\n]", text):
        if any(verb in sentence.lower() for verb in SUBJECT_VERBS):
            return sentence
    return ""


def select_shapes(shapes: Iterable[DetectedShape], phrase: str) -> list[DetectedShape]:
    """Shapes matching the colours and kinds ``phrase`` names (all of them if it names none)."""
    colors, kinds = mentioned_colors(phrase), mentioned_kinds(phrase)
    return [
        s for s in shapes if (not colors or s.color in colors) and (not kinds or s.kind in kinds)
    ]


def candidate_labels(text: str) -> list[str] | None:
    """The first JSON array of strings in the prompt (classification candidates)."""
    for match in re.finditer(r"\[[^\[\]]*\]", text):
        try:
            value = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return None


# --- descriptions ----------------------------------------------------------------------


def describe(scene: SceneFacts) -> str:
    """One sentence of measurable facts about one image (no trailing period)."""
    size = f"a {scene.width}x{scene.height}"
    if not scene.synthetic:
        colours = _join(list(scene.dominant_colors)) or scene.mean_color_name
        return (
            f"{size} photo, not a synthetic shape scene, mostly {colours},"
            f" {scene.brightness_word} (mean brightness {scene.brightness:.0f}/255)"
        )
    count = len(scene.shapes)
    noun = "shape" if count == 1 else "shapes"
    listed = _join([_article(s.label) for s in scene.shapes])
    tail = f": {listed}" if listed else ""
    return f"{size} image with {count} {noun} on a {scene.background} background{tail}"


def scene_words(scene: SceneFacts) -> set[str]:
    """Words that truthfully describe ``scene``, for scoring classification labels."""
    found = {scene.brightness_word, *scene.dominant_colors, scene.mean_color_name}
    if not scene.synthetic:
        return found | {"photo", "photograph", "picture", "natural", "real"}
    count = len(scene.shapes)
    found |= {"synthetic", "shape", "diagram", "drawing", _count_word(count), str(count)}
    if count == 0:
        found |= {"empty", "blank", "no", "none", "plain"}
    for shape in scene.shapes:
        found |= {shape.color, shape.kind}
        found |= {alias for alias, kind in KIND_WORDS.items() if kind == shape.kind}
    return found


def best_label(labels: Sequence[str], scene: SceneFacts | None) -> str:
    """The label sharing most words with the scene; ties go to the first label. A
    photograph's label is the one its measured properties fit best (emulator/classify.py)."""
    if scene is not None and not scene.synthetic:
        return photo_label(labels, scene)
    vocabulary = scene_words(scene) if scene is not None else set()
    scores = [len(set(words(label)) & vocabulary) for label in labels]
    return labels[scores.index(max(scores))]


# --- task answers ------------------------------------------------------------------------


def box_2d(box: tuple[int, int, int, int], width: int, height: int) -> list[int]:
    """Pixel box (x2/y2 exclusive) -> [ymin, xmin, ymax, xmax] normalised to 0-1000."""
    x1, y1, x2, y2 = box
    return [
        round(y1 / height * 1000),
        round(x1 / width * 1000),
        round(y2 / height * 1000),
        round(x2 / width * 1000),
    ]


def mask_size(width: int, height: int) -> tuple[int, int]:
    """The mask resolution for a ``width`` x ``height`` box: never the box's own size."""
    size = (
        max(MIN_MASK_SIDE, width // MASK_SIDE_DIVISOR),
        max(MIN_MASK_SIDE, height // MASK_SIDE_DIVISOR),
    )
    # Tiny boxes would get a mask of exactly their size; upsample those instead.
    return (width * 2, height * 2) if size == (width, height) else size


def mask_data_url(mask: Image.Image, with_prefix: bool = True) -> str:
    """A grayscale PNG probability map at another size than the box, base64-encoded.

    With ``with_prefix`` the string starts ``data:image/png;base64,``; without, it is bare
    base64. Callers must resize the map to the box and threshold it at 127.
    """
    small = mask.resize(mask_size(mask.width, mask.height), Image.Resampling.BILINEAR)
    encoded = base64.b64encode(encode(small, "PNG")).decode("ascii")
    return MASK_PREFIX + encoded if with_prefix else encoded


def _mask(shape: DetectedShape, scene: SceneFacts, index: int, mask_format: str) -> Any:
    if mask_format == "seg_tokens":
        return seg_tokens(shape.mask)
    if mask_format == "polygon":
        return polygon(shape.mask, shape.box, scene.width, scene.height)
    return mask_data_url(shape.mask, with_prefix=index % 2 == 0)


def detection_items(
    scene: SceneFacts | None, prompt: str, masks: bool, mask_format: str = "png"
) -> list[dict[str, Any]]:
    """Detection (or, with ``masks``, segmentation) items for the shapes the prompt names.

    ``png`` masks alternate by item index: even items carry the data-URL prefix, odd ones
    not. ``seg_tokens`` and ``polygon`` masks are described in masks.py.
    """
    if scene is None:
        return []
    items: list[dict[str, Any]] = []
    for index, shape in enumerate(select_shapes(scene.shapes, subject_phrase(prompt))):
        item: dict[str, Any] = {
            "box_2d": box_2d(shape.box, scene.width, scene.height),
            "label": shape.label,
        }
        if masks:
            item["mask"] = _mask(shape, scene, index, mask_format)
        items.append(item)
    return items


def _fenced(payload: str, bare: bool) -> str:
    return payload if bare else f"```json\n{payload}\n```"


def question_answer(question: str, scene: SceneFacts) -> str:
    """Answer a free question about one image from its facts."""
    lowered = question.lower()
    if "how many" in lowered:
        chosen = select_shapes(scene.shapes, question)
        count = len(chosen)
        listed = _join([s.label for s in chosen])
        return f"{count} ({listed})" if listed else str(count)
    if "colour" in lowered or "color" in lowered:
        if scene.synthetic and scene.shapes:
            return "the shapes are " + _join([s.color for s in scene.shapes])
        return "mostly " + (_join(list(scene.dominant_colors)) or scene.mean_color_name)
    if any(k in lowered for k in ("size", "dimension", "how big", "resolution")):
        return f"{scene.width}x{scene.height} pixels"
    return describe(scene)


def _per_image(scenes: Sequence[SceneFacts], render: Any) -> str:
    if len(scenes) == 1:
        return str(render(scenes[0]))
    return ", ".join(f"Image {i}: {render(s)}" for i, s in enumerate(scenes, start=1))


def _wants_boxes(request: GenerateRequest) -> bool:
    return "box_2d" in f"{request.system_text}\n{request.prompt_text}"


def _bare_json(request: GenerateRequest) -> bool:
    return (request.generation.response_mime_type or "").lower() == "application/json"


def is_structured(request: GenerateRequest) -> bool:
    """True when the answer will be filled from the response schema."""
    schema = request.generation.response_schema
    return _bare_json(request) and schema is not None and not _wants_boxes(request)


def structured_answer(
    request: GenerateRequest, scenes: Sequence[SceneFacts], invalid: bool = False
) -> str:
    """JSON that validates against the response schema, or (``invalid``) that does not."""
    schema = request.generation.response_schema or {}
    value = fill_schema(schema, list(scenes), describe, best_label)
    return json.dumps(break_schema(schema, value) if invalid else value)


def answer(
    request: GenerateRequest,
    scenes: Sequence[SceneFacts],
    *,
    invalid_structured: bool = False,
    mask_format: str = "png",
) -> str:
    """The model's reply text for ``request`` about ``scenes`` (one per image).

    ``invalid_structured`` makes a structured answer violate its schema on purpose;
    ``mask_format`` is the segmentation mask format (masks.py).
    """
    prompt = request.prompt_text
    instructions = f"{request.system_text}\n{prompt}"
    if _wants_boxes(request):
        first = scenes[0] if scenes else None
        wants_masks = "mask" in instructions.lower()
        items = detection_items(first, prompt, wants_masks, mask_format)
        return _fenced(json_list(items), _bare_json(request))
    if is_structured(request):
        return structured_answer(request, scenes, invalid_structured)
    return text_answer(prompt, scenes)


def text_answer(prompt: str, scenes: Sequence[SceneFacts]) -> str:
    """A plain-text reply: a label, a comparison, a caption or an answer to a question."""
    labels = candidate_labels(prompt)
    if labels is not None:
        return best_label(labels, scenes[0] if scenes else None)
    if asks_to_compare(prompt, len(scenes)):
        return SYNTHETIC_PREFIX.format(what="comparison") + compare_answer(scenes)
    if not scenes:
        return SYNTHETIC_PREFIX.format(what="answer") + "there is no image to look at."
    if re.search(r"\b(caption|describe|description)\b", prompt.lower()):
        return SYNTHETIC_PREFIX.format(what="caption") + _per_image(scenes, describe) + "."
    reply = _per_image(scenes, lambda s: question_answer(prompt, s))
    return SYNTHETIC_PREFIX.format(what="answer") + reply + "."
