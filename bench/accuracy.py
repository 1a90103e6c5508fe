"""Measure box errors and mask IoU of the whole pipeline against drawn ground truth.

Run against a stack (`visionq dev`, emulator or not):
    python bench/accuracy.py --url http://127.0.0.1:8000 --api-key vq_...
Prints, per case, the worst box error in pixels and the worst and mean mask IoU.
"""

from __future__ import annotations

import argparse
import io
import statistics

from PIL import Image, ImageChops, ImageDraw

from visionq.client import VisionqClient
from visionq.emulator.shapes import Shape, encode, random_scene, triangle_points


def exif_rotated(upright: Image.Image) -> bytes:
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def truth_mask(shape: Shape) -> Image.Image:
    x1, y1, _, _ = shape.box
    mask = Image.new("1", (shape.width, shape.height), 0)
    draw = ImageDraw.Draw(mask)
    size = (0, 0, shape.width - 1, shape.height - 1)
    if shape.kind == "rectangle":
        draw.rectangle(size, fill=255)
    elif shape.kind == "ellipse":
        draw.ellipse(size, fill=255)
    else:
        draw.polygon([(x - x1, y - y1) for x, y in triangle_points(shape.box)], fill=255)
    return mask


def iou(a: Image.Image, b: Image.Image) -> float:
    """Intersection over union of two binary (mode "1") masks of the same size."""
    both = ImageChops.logical_and(a, b).histogram()[255]
    either = ImageChops.logical_or(a, b).histogram()[255]
    return both / max(1, either)


def box_error(objects: list[dict[str, object]], shapes: list[Shape]) -> int:
    boxes = {str(obj["label"]): obj["box"] for obj in objects}
    worst = 0
    for shape in shapes:
        found = boxes.get(shape.label)
        if not isinstance(found, list):
            return 10**6  # a missed shape
        worst = max(worst, *(abs(int(a) - b) for a, b in zip(found, shape.box, strict=True)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--scenes", type=int, default=10)
    args = parser.parse_args()
    with VisionqClient(args.url, args.api_key) as client:
        cases: dict[str, list[tuple[bytes, list[Shape], dict[str, object]]]] = {
            "png": [], "jpeg q90": [], "exif-rotated jpeg": [], "downscaled (max_side 600)": []
        }  # fmt: skip
        for seed in range(args.scenes):
            image, shapes = random_scene(seed, width=1000, height=750, count=4)
            cases["png"].append((encode(image, "PNG"), shapes, {}))
            cases["jpeg q90"].append((encode(image, "JPEG", quality=90), shapes, {}))
            upright, tall = random_scene(100 + seed, width=600, height=800, count=3)
            cases["exif-rotated jpeg"].append((exif_rotated(upright), tall, {}))
            big, big_shapes = random_scene(200 + seed, width=1200, height=900, count=3)
            cases["downscaled (max_side 600)"].append(
                (encode(big, "PNG"), big_shapes, {"max_side": 600})
            )
        print(f"{'case':28} {'jobs':>4} {'worst box error px':>19} {'mean':>6}")
        for name, items in cases.items():
            ids = [client.submit([d], task="detect", options=o or None).id for d, _, o in items]
            done = client.wait(ids, timeout=300)
            errors = [
                box_error(done[i].result["objects"], s)
                for i, (_, s, _) in zip(ids, items, strict=True)
            ]  # type: ignore[index]
            print(f"{name:28} {len(ids):>4} {max(errors):>19} {statistics.mean(errors):>6.2f}")
        scores: list[float] = []
        for seed in range(args.scenes):
            image, shapes = random_scene(300 + seed, width=800, height=600, count=3)
            job = client.submit([encode(image, "PNG")], task="segment")
            result = client.wait([job.id], timeout=120)[job.id].result or {}
            index = {o["label"]: n for n, o in enumerate(result.get("objects", []))}
            for shape in shapes:
                png = client.mask_png(job.id, index[shape.label])
                scores.append(iou(Image.open(io.BytesIO(png)).convert("1"), truth_mask(shape)))
        mean = statistics.mean(scores)
        print(f"segment masks: {len(scores)}, IoU min {min(scores):.4f} mean {mean:.4f}")


if __name__ == "__main__":
    main()
