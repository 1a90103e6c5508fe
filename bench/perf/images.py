"""Benchmark images: photo-like JPEGs and flat PNG scenes of mixed sizes, reproducible."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from visionq.emulator.shapes import encode, random_scene


@dataclass(frozen=True)
class BenchImage:
    name: str
    data: bytes
    mime_type: str
    width: int
    height: int


def photo_like(seed: int, width: int, height: int, *, noise: float = 8.0) -> Image.Image:
    """Shapes over colour gradients with sensor-like noise: compresses like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    gains = rng.uniform(0.3, 1.0, 3)
    gradient = np.stack(
        [
            x / width * 255 * gains[0],
            y / height * 255 * gains[1],
            (x + y) / (width + height) * 255 * gains[2],
        ],
        axis=-1,
    )
    scene, _ = random_scene(seed, width, height, count=3)
    pixels = 0.5 * np.asarray(scene, np.float32) + 0.5 * gradient
    pixels += rng.normal(0.0, noise, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def image_pool(
    count: int = 40, *, seed: int = 7, sides: tuple[int, int] = (256, 1024)
) -> list[BenchImage]:
    """``count`` images, sides drawn in ``sides``; even ones photo-like JPEG, odd ones PNG
    scenes (flat colours, as screenshots and diagrams compress)."""
    rng = random.Random(seed)
    pool = []
    for index in range(count):
        width, height = rng.randint(*sides), rng.randint(*sides)
        if index % 2 == 0:
            data = encode(photo_like(seed + index, width, height), "JPEG", quality=85)
            pool.append(BenchImage(f"photo-{index}.jpg", data, "image/jpeg", width, height))
        else:
            image, _ = random_scene(seed + index, width, height, count=3)
            pool.append(
                BenchImage(f"scene-{index}.png", encode(image, "PNG"), "image/png", width, height)
            )
    return pool


def jpeg_of_size(target_kb: int, *, seed: int = 11) -> BenchImage:
    """A photo-like JPEG whose size is within ~10% of ``target_kb`` (4:3, quality 85)."""
    width = 800
    data = b""
    for _ in range(8):
        height = width * 3 // 4
        data = encode(photo_like(seed, width, height), "JPEG", quality=85)
        ratio = target_kb * 1024 / len(data)
        if 0.93 < ratio < 1.07:
            break
        width = max(64, int(width * ratio**0.5))
    return BenchImage(f"photo-{target_kb}kb.jpg", data, "image/jpeg", width, width * 3 // 4)


def write_pool(pool: list[BenchImage], directory: Path) -> list[tuple[str, str]]:
    """Write the images to ``directory``; returns (path, mime type) pairs in pool order."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for image in pool:
        path = directory / image.name
        path.write_bytes(image.data)
        written.append((str(path), image.mime_type))
    return written


def describe(pool: list[BenchImage]) -> dict[str, object]:
    sizes = [len(image.data) for image in pool]
    return {
        "count": len(pool),
        "jpeg": sum(image.mime_type == "image/jpeg" for image in pool),
        "png": sum(image.mime_type == "image/png" for image in pool),
        "min_side": min(min(i.width, i.height) for i in pool),
        "max_side": max(max(i.width, i.height) for i in pool),
        "mean_kb": round(sum(sizes) / len(sizes) / 1024, 1),
        "max_kb": round(max(sizes) / 1024, 1),
    }
