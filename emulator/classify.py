"""Which label a photograph gets: the one its measurable properties fit best.

The emulator cannot tell a cat from an astronaut; it can measure a photograph's colours,
brightness and saturation (scene.py, photo.py). A label scores, for each of its words:

- a colour the photo is mostly made of: 3, 2 or 1 for its first, second and third
  dominant colour (``SceneFacts.dominant_colors``), 1 for the mean colour's name;
- a word the measurements make true: 1 (``property_words``: dark/medium/bright,
  photo/photograph/picture, the hue family, warm or cool, colourful or muted, black and
  white);
- a subject word of ``SUBJECTS`` whose measurable sign holds: 1 ("forest" when green
  dominates, "sky" or "sea" when blue does, "night" when it is dark, "snow" when it is
  bright, "sunset" or "coffee" when a warm hue does, "vintage" or "black and white"
  when it is greyscale ...).

The highest score wins. Among labels that tie (every label scores 0 when none of their
words is measurable), the labels are read as a scale from darkest to brightest: the
photo's mean brightness picks one of them, so different photos get different answers and
the answer is the same for the same photo.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from visionq.emulator.photo import GREYSCALE_SATURATION, VIVID_SATURATION, WARM_HUES
from visionq.emulator.scene import SceneFacts

Check = Callable[[SceneFacts], bool]


def _dark(scene: SceneFacts) -> bool:
    return scene.brightness < 85


def _bright(scene: SceneFacts) -> bool:
    return scene.brightness > 170


def _greyscale(scene: SceneFacts) -> bool:
    return scene.saturation < GREYSCALE_SATURATION


def _vivid(scene: SceneFacts) -> bool:
    return scene.saturation > VIVID_SATURATION


def _hue(*families: str) -> Check:
    return lambda scene: scene.hue in families


_SUBJECT_CHECKS: dict[Check, tuple[str, ...]] = {
    _dark: ("night", "space", "shadow", "shadows", "evening", "stars", "galaxy", "cave"),
    _bright: ("snow", "winter", "daylight", "paper", "document", "page", "cloud", "clouds"),
    _greyscale: ("vintage", "old", "monochrome", "grayscale", "greyscale", "xray"),
    _vivid: ("flower", "flowers", "toys", "market", "festival", "candy", "rainbow"),
    _hue("green"): ("forest", "tree", "trees", "grass", "garden", "park", "plant", "plants",
                    "leaf", "leaves", "landscape", "nature", "field", "jungle", "meadow"),
    _hue("blue"): ("sky", "sea", "ocean", "water", "lake", "river", "beach", "underwater",
                   "ice"),
    _hue(*WARM_HUES): ("sunset", "sunrise", "fire", "autumn", "fall", "desert", "food",
                       "coffee", "tea", "bread", "wood", "wooden", "sand"),
}  # fmt: skip
# Subject word -> what must be measured for it to count.
SUBJECTS: dict[str, Check] = {
    word: check for check, words in _SUBJECT_CHECKS.items() for word in words
}


# "black and white" is one property (greyscale), not two colours.
_MONOCHROME = re.compile(r"\bblack[\s-]*(and|&)[\s-]*white\b|\bb\s*&\s*w\b")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", _MONOCHROME.sub(" monochrome ", text.lower()))


def property_words(scene: SceneFacts) -> set[str]:
    """Words the photo's measurements make true (besides its colour names)."""
    found = {scene.brightness_word, "photo", "photograph", "picture", "natural", "real"}
    if scene.hue is not None:
        found |= {scene.hue, "warm" if scene.hue in WARM_HUES else "cool"}
    if _greyscale(scene):
        found |= {"black", "white", "gray", "grey", "monochrome", "greyscale", "grayscale"}
    else:
        found |= {"colour", "color"} | ({"colourful", "colorful", "vivid"} if _vivid(scene)
                                         else {"muted"})  # fmt: skip
    if _bright(scene):
        found.add("light")
    return found


def label_score(label: str, scene: SceneFacts) -> int:
    """How well ``label`` fits the photo ``scene`` (see the module docstring)."""
    colour_weight = {name: 3 - rank for rank, name in enumerate(scene.dominant_colors[:3])}
    properties = property_words(scene)
    score = 0
    for word in set(_words(label)):
        score += colour_weight.get(word, 0)
        if word == scene.mean_color_name or word in properties:
            score += 1
        check = SUBJECTS.get(word)
        if check is not None and check(scene):
            score += 1
    return score


def photo_label(labels: Sequence[str], scene: SceneFacts) -> str:
    """The label of ``labels`` the photo ``scene`` fits best (see the module docstring)."""
    scores = [label_score(label, scene) for label in labels]
    best = max(scores)
    tied = [label for label, score in zip(labels, scores, strict=True) if score == best]
    index = min(int(scene.brightness / 256 * len(tied)), len(tied) - 1)
    return tied[index]
