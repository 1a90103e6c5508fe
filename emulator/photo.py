"""Measurable facts of a photograph beyond its colour names: how colourful it is and which
hue family dominates its coloured pixels (for classify, see emulator/classify.py).

Read from the same small thumbnail as the other colour statistics (scene.py), in HSV:
saturation is the mean S (0-255); the hue family is the one most coloured pixels (S > 64
and V > 48) fall in, when at least 10% of the image does, else None.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageStat

# Pillow's hue runs 0-255 for 0-360 degrees; each family's upper bound, in that order
# (red wraps around: 0-15 and 345-360 degrees).
HUE_FAMILIES: tuple[tuple[str, int], ...] = (
    ("red", 11),  # up to 15 degrees
    ("orange", 32),  # 45
    ("yellow", 50),  # 70
    ("green", 120),  # 170
    ("blue", 185),  # 260
    ("purple", 245),  # 345
    ("red", 256),
)
WARM_HUES = frozenset({"red", "orange", "yellow"})
COLOURED_S, COLOURED_V = 64, 48
MIN_HUE_SHARE = 0.10
# Below this mean saturation a photograph reads as black and white.
GREYSCALE_SATURATION = 20.0
VIVID_SATURATION = 100.0


def colour_measures(small: Image.Image) -> tuple[float, str | None]:
    """(mean saturation 0-255, dominant hue family or None) of an RGB thumbnail."""
    hue, saturation, value = small.convert("HSV").split()
    mean_saturation = float(ImageStat.Stat(saturation).mean[0])
    coloured = ImageChops.multiply(
        saturation.point(lambda s: 255 if s > COLOURED_S else 0),
        value.point(lambda v: 255 if v > COLOURED_V else 0),
    )
    counts = hue.histogram(mask=coloured)
    totals: dict[str, int] = {}
    start = 0
    for family, end in HUE_FAMILIES:
        totals[family] = totals.get(family, 0) + sum(counts[start:end])
        start = end
    family, count = max(totals.items(), key=lambda item: item[1])
    share = count / max(1, small.width * small.height)
    return mean_saturation, family if share >= MIN_HUE_SHARE else None
