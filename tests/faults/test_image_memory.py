"""Huge images at submit: the API's memory stays bounded whatever the dimensions claim.

A 10000x10000 single-colour image is 3.9 KB as lossless WEBP and 23 KB as HEIF, yet
decoding it takes 1.5 GB and 0.7 GB. Eight of each format are submitted at once to a real
API process, then eight 3000x3000 lossless WEBPs (150 MB of decode each: they fit the
per-image bound, so they queue in the decode budget), while the API's RSS is sampled.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from tests.faults.conftest import report
from tests.faults.stack import FaultStack
from visionq.vision.formats import register_heif

pytestmark = pytest.mark.faults

PARALLEL = 8
RSS_LIMIT_MB = 600
SIDE = 10_000
# How each file is written: lossless WEBP and HEIF (x265's fastest preset) are tiny.
FORMATS: dict[str, tuple[str, str, dict[str, object]]] = {
    "webp": ("WEBP", "image/webp", {"lossless": True}),
    "heif": ("HEIF", "image/heif", {"quality": 50, "enc_params": {"preset": "ultrafast"}}),
    "png": ("PNG", "image/png", {}),
    "jpeg": ("JPEG", "image/jpeg", {"quality": 90}),
}


def _image(cache: Path, name: str, side: int) -> bytes:
    """A single-colour ``side`` x ``side`` image, written once per machine (HEIF: ~6 s)."""
    path = cache / f"{name}-{side}.bin"
    if not path.exists():
        fmt, _, params = FORMATS[name]
        if fmt == "HEIF":
            register_heif()
        out = io.BytesIO()
        Image.new("RGB", (side, side), (200, 30, 40)).save(out, fmt, **params)
        path.write_bytes(out.getvalue())
    return path.read_bytes()


class RssSampler:
    """The peak RSS of a process and its children, sampled every 10 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.idle = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # a child that just ended
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _submit_together(stack: FaultStack, data: bytes, mime: str) -> list[httpx.Response]:
    """``PARALLEL`` submits of ``data``, released at the same moment."""
    start = threading.Barrier(PARALLEL)

    def one(index: int) -> httpx.Response:
        with stack.client() as client:
            start.wait()
            return client.post(
                "/v1/jobs",
                data={
                    "task": "caption",
                    "options": json.dumps({"cache": False, "max_side": 1024}),
                    "prompt": f"#{index}",
                },
                files=[("image", (f"huge-{index}", data, mime))],
            )

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(PARALLEL)))


def test_huge_images_keep_the_api_memory_bounded(
    make_stack: Callable[..., FaultStack], request: pytest.FixtureRequest
) -> None:
    cache = request.config.cache.mkdir("huge-images")
    batches = [(name, _image(cache, name, SIDE), FORMATS[name][1]) for name in FORMATS]
    batches.append(("webp-3000", _image(cache, "webp", 3000), "image/webp"))
    stack = make_stack()
    stack.start_worker(concurrency=4)
    assert stack.api is not None
    answers: dict[str, list[httpx.Response]] = {}
    with RssSampler(stack.api.popen.pid) as rss:
        for name, data, mime in batches:
            answers[name] = _submit_together(stack, data, mime)
    statuses = {name: sorted(r.status_code for r in got) for name, got in answers.items()}
    accepted = sum(r.status_code == 202 for got in answers.values() for r in got)
    report(
        "image_memory",
        {
            "api_idle_rss_mb": rss.idle >> 20,
            "api_peak_rss_mb": rss.peak >> 20,
            "statuses": statuses,
            "accepted": accepted,
            "bytes": {name: len(data) for name, data, _ in batches},
        },
    )
    assert rss.peak < RSS_LIMIT_MB << 20, f"API peak RSS {rss.peak >> 20} MB"
    for name, got in answers.items():
        for answer in got:
            assert answer.status_code in (202, 413, 503), (name, answer.text)
            if answer.status_code == 503:
                assert int(answer.headers["Retry-After"]) >= 1
            if answer.status_code == 413:
                body = answer.json()["error"]
                assert body["code"] == "image_too_large", body
                assert "MB allowed per image" in body["message"], body
    # What cannot be decoded within the bound is refused; what can is accepted. A
    # 10000x10000 PNG passes its row check in a few MB, but shrinking it to max_side would
    # decode it whole (440 MB): refused at submit too, from its header.
    assert statuses["webp"] == statuses["heif"] == statuses["png"] == [413] * PARALLEL
    assert statuses["jpeg"] == [202] * PARALLEL
    assert statuses["webp-3000"].count(202) >= PARALLEL // 2, statuses
    stack.wait_all_terminal(accepted, timeout=120)
    # The worker downscales (max_side) within the same bound: a JPEG at a DCT scale, a
    # 3000x3000 WEBP in full; every accepted job succeeds.
    jobs = stack.audit().jobs
    assert {job["status"] for job in jobs} == {"succeeded"}, [job["error_code"] for job in jobs]
    assert len(jobs) == accepted
    assert not list((stack.workdir / "blobs").rglob("*.tmp"))
