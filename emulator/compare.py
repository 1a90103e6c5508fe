"""Compare answers: what two or more images share and what sets them apart.

Used for prompts with 2+ images that ask for a comparison ("compare", "differ",
"difference", "same", ...). Everything said is measured by scene.py: shape labels
(counted as multisets), image sizes and, for shapes found in several images, box sizes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from visionq.emulator.scene import DetectedShape, SceneFacts

# Matched against whole lower-case words with a trailing plural "s" dropped.
COMPARE_WORDS = frozenset(
    {"compare", "comparison", "contrast", "differ", "different", "difference", "same", "identical"}
)


def asks_to_compare(prompt: str, image_count: int) -> bool:
    """True for 2+ images and a prompt that asks how they compare."""
    if image_count < 2:
        return False
    found = re.findall(r"[a-z]+", prompt.lower())
    stems = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in found}
    return bool(stems & COMPARE_WORDS)


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _listed(labels: Counter[str]) -> str:
    """``red rectangle and 2 x blue ellipse``, in label order; "nothing" when empty."""
    parts = [label if n == 1 else f"{n} x {label}" for label, n in sorted(labels.items()) if n]
    return _join(parts) or "nothing"


def _size(scene: SceneFacts) -> str:
    return f"{scene.width}x{scene.height}"


def _summary(index: int, scene: SceneFacts) -> str:
    head = f"image {index} ({_size(scene)})"
    if not scene.synthetic:
        colours = _join(list(scene.dominant_colors)) or scene.mean_color_name
        return f"{head} is a photo, mostly {colours} and {scene.brightness_word}"
    count = len(scene.shapes)
    return f"{head} has {count} shape" + ("" if count == 1 else "s")


def _labels(scene: SceneFacts) -> Counter[str]:
    return Counter(shape.label for shape in scene.shapes)


def _first(scene: SceneFacts, label: str) -> DetectedShape:
    return next(shape for shape in scene.shapes if shape.label == label)


def _box_size(shape: DetectedShape) -> str:
    return f"{shape.box[2] - shape.box[0]}x{shape.box[3] - shape.box[1]}"


def _shape_sizes(scenes: Sequence[SceneFacts], shared: Counter[str]) -> list[str]:
    """One sentence per shared label whose box size is not the same everywhere."""
    sentences = []
    for label in sorted(shared):
        sizes = [_box_size(_first(scene, label)) for scene in scenes]
        if len(set(sizes)) > 1:
            where = _join([f"{size} in image {i}" for i, size in enumerate(sizes, start=1)])
            sentences.append(f"The {label} is {where}.")
    return sentences


def _sizes_sentence(scenes: Sequence[SceneFacts]) -> str:
    sizes = [_size(scene) for scene in scenes]
    if len(set(sizes)) == 1:
        subject = "Both images are" if len(scenes) == 2 else "All images are"
        return f"{subject} {sizes[0]}."
    return "Sizes differ: " + " vs ".join(sizes) + "."


def compare_answer(scenes: Sequence[SceneFacts]) -> str:
    """E.g. "Image 1 (640x480) has 3 shapes, image 2 (200x100) has 2 shapes. Both: red
    rectangle. Only in image 1: blue ellipse and green triangle. Only in image 2: cyan
    ellipse. Sizes differ: 640x480 vs 200x100. ..." (answers.py adds the synthetic prefix).
    """
    counts = [_labels(scene) for scene in scenes]
    shared = counts[0].copy()
    for other in counts[1:]:
        shared &= other
    summaries = [_summary(i, scene) for i, scene in enumerate(scenes, start=1)]
    first = summaries[0]
    sentences = [first[0].upper() + first[1:] + ", " + ", ".join(summaries[1:]) + "."]
    sentences.append(("Both: " if len(scenes) == 2 else "In all images: ") + _listed(shared) + ".")
    for index, own in enumerate(counts):
        others: Counter[str] = Counter()
        for position, other in enumerate(counts):
            if position != index:
                others |= other
        sentences.append(f"Only in image {index + 1}: {_listed(own - others)}.")
    sentences.append(_sizes_sentence(scenes))
    sentences.extend(_shape_sizes(scenes, shared))
    if not any(counts):
        colours = " vs ".join(scene.mean_color_name for scene in scenes)
        sentences.append(f"No shapes in any image; mean colours: {colours}.")
    elif all(count == counts[0] for count in counts[1:]):
        sentences.append("Same shapes in every image.")
    else:
        sentences.append("The shapes differ.")
    return " ".join(sentences)
