"""Sample images for `visionq demo`: generated shapes and real photographs.

The photographs come from scikit-image's bundled data (the `demo` extra). They are read
straight from the package's folder, which is faster than importing scikit-image.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from visionq.emulator.shapes import Shape, draw_scene, encode, random_scene

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")
# Classification labels for the photographs: their dominant colours, which Gemini sees and
# the emulator measures (emulator/scene.py), so even synthetic answers are true and differ
# from photo to photo (subjects such as "a cat" only Gemini can tell apart).
PHOTO_LABELS = ["mostly gray and silver", "mostly brown", "mostly navy blue and black"]


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    photo: bool


def shape_samples() -> list[Sample]:
    """Solid shapes whose exact boxes are known (and which the emulator can 'see')."""
    first, _ = random_scene(7, width=800, height=600, count=4)
    second = draw_scene(
        640,
        480,
        [
            Shape("ellipse", "blue", (60, 80, 260, 260)),
            Shape("rectangle", "red", (340, 120, 580, 300)),
        ],
    )
    third, _ = random_scene(12, width=1024, height=768, count=3)
    return [
        Sample("shapes-1.png", encode(first, "PNG"), photo=False),
        Sample("shapes-2.png", encode(second, "PNG"), photo=False),
        Sample("shapes-3.jpg", encode(third, "JPEG", quality=90), photo=False),
    ]


def photo_dir() -> Path | None:
    """scikit-image's data folder, or None when the package is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


def photo_samples() -> list[Sample]:
    folder = photo_dir()
    if folder is None:
        return []
    return [
        Sample(name, (folder / name).read_bytes(), photo=True)
        for name in PHOTOS
        if (folder / name).is_file()
    ]
