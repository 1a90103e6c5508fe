"""Small helpers for driving the API over HTTP in integration tests."""

from __future__ import annotations

import io
import json
import random
import time
from typing import Any

import httpx
import redis
from PIL import Image

from visionq.emulator.shapes import Shape, draw_scene, encode, random_scene
from visionq.models.broker import JOBS_QUEUE
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key

TERMINAL = {"succeeded", "failed", "cancelled"}


def scene_png(
    seed: int, width: int = 640, height: int = 480, count: int = 3
) -> tuple[bytes, list[Shape]]:
    image, shapes = random_scene(seed, width=width, height=height, count=count)
    return encode(image, "PNG"), shapes


def noise_png(seed: int, side: int) -> bytes:
    """A ``side`` x ``side`` PNG of random pixels from ``seed``: the same for the same seed,
    unlike any other seed's (and barely compressible)."""
    rng = random.Random(seed)
    pixels = bytes(rng.getrandbits(8) for _ in range(side * side * 3))
    image = Image.frombytes("RGB", (side, side), pixels)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def submit(client: httpx.Client, image: bytes | list[bytes], **fields: Any) -> httpx.Response:
    images = image if isinstance(image, list) else [image]
    data: dict[str, Any] = {}
    for key, value in fields.items():
        data[key] = json.dumps(value) if key in ("options", "schema") else value
    files = [
        ("image", (f"img{i}.bin", blob, "application/octet-stream"))
        for i, blob in enumerate(images)
    ]
    return client.post("/v1/jobs", data=data, files=files)


def wait_done(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")


def wait_all(client: httpx.Client, ids: list[str], timeout: float = 120) -> list[dict[str, Any]]:
    """The jobs ``ids`` once every one has ended, in the order given."""
    deadline = time.monotonic() + timeout
    pending = set(ids)
    done: dict[str, dict[str, Any]] = {}
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} jobs not done in {timeout} s"
        for job_id in list(pending):
            job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
            if job["status"] in TERMINAL:
                done[job_id] = job
                pending.discard(job_id)
        time.sleep(0.5)
    return [done[job_id] for job_id in ids]


def run_job(client: httpx.Client, image: bytes | list[bytes], **fields: Any) -> dict[str, Any]:
    response = submit(client, image, **fields)
    assert response.status_code == 202, response.text
    return wait_done(client, response.json()["id"])


def assert_boxes_match(
    objects: list[dict[str, Any]], shapes: list[Shape], tolerance: int = 1
) -> None:
    by_label = {obj["label"]: obj["box"] for obj in objects}
    assert sorted(by_label) == sorted(shape.label for shape in shapes), objects
    for shape in shapes:
        box = by_label[shape.label]
        assert all(abs(a - b) <= tolerance for a, b in zip(box, shape.box, strict=True)), (
            shape,
            box,
        )


def exif_rotated_jpeg(upright: Image.Image) -> bytes:
    """A JPEG whose pixels are stored rotated, with EXIF orientation 6 to undo it."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # display: rotate 90 degrees clockwise
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


__all__ = ["Shape", "draw_scene", "encode"]


def own_tenant(database_url: str, api_url: str, tenant: str) -> httpx.Client:
    """A client of a tenant no other test uses (a new key in the stack's database), so
    counting or listing its jobs sees only this test's jobs."""
    engine = make_engine(database_url, pool_size=1)
    with make_session_factory(engine).begin() as session:
        secret = create_key(session, name=tenant, tenant=tenant).secret
    engine.dispose()
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.Client(base_url=api_url, headers=headers, timeout=30)


def jobs_queue_length(redis_url: str) -> int:
    """Messages waiting in the jobs queue, every kombu priority list counted: with fair share
    the API's messages are run_next tokens at priority 9, kept in a sibling list."""
    client = redis.Redis.from_url(redis_url)
    try:
        names = [JOBS_QUEUE] + [f"{JOBS_QUEUE}\x06\x16{step}" for step in (3, 6, 9)]
        return sum(int(client.llen(name)) for name in names)
    finally:
        client.close()
