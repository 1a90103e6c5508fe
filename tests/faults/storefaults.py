"""Helpers of the storage fault tests: a small tmpfs blob store, distinct images, submits."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.faults.stack import FaultStack, JobForm


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "6m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only). Skipped where mounting is
    impossible, but never in CI (the CI variable set): there it is a failure."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        why = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI runs as root and must run this test)")
        pytest.skip(why)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs at ``path`` read-only ("ro") or read-write ("rw")."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def fill(path: Path, leave_bytes: int = 0) -> Path:
    """Write a filler file until the file system has ``leave_bytes`` free (about)."""
    filler = path / "filler"
    free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
    with contextlib.suppress(OSError), filler.open("ab") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


def temporaries(path: Path) -> list[str]:
    return [str(p) for p in path.rglob("*.tmp")]


def noise_png(side: int = 300) -> bytes:
    """A distinct, incompressible PNG (about side*side*3 bytes): fills a store quickly."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def submit_images(
    stack: FaultStack, images: list[bytes], *, task: str = "caption", threads: int = 8
) -> list[httpx.Response]:
    """Submit one job per image from ``threads`` threads (result cache off)."""

    def form(index: int) -> JobForm:
        files = [("image", ("noise.png", images[index], "image/png"))]
        data = {"task": task, "options": json.dumps({"cache": False}), "prompt": f"#{index}"}
        return data, files

    return stack.post_jobs(len(images), form, threads=threads)


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return counts
