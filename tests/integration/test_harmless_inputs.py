"""Harmless oddities are accepted, and GIF, BMP and TIFF are converted to PNG and run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image

from tests.integration.bad_input_corpus import (
    CAPTION,
    JPEG,
    PNG,
    PNG_B64,
    Corpus,
    _encode,
    json_body,
    multipart,
    stack_corpus,
)
from tests.integration.helpers import wait_done

__all__ = ["stack_corpus"]  # fixtures used by this module

pytestmark = pytest.mark.integration


def test_harmless_oddities_are_accepted(stack_corpus: Corpus) -> None:
    """Not malformed: the format is read from the bytes, and bytes after a PNG's IEND are
    ignored by every decoder. Each creates exactly one job: the count sees jobs."""
    assert stack_corpus.tenant_job_count() == 0, "a refused request created a job for the tenant"
    trailing = PNG + b"<html>trailing bytes after IEND</html>" + b"PK\x03\x04" + b"\0" * 26
    sends = [
        multipart(CAPTION, [trailing]),
        multipart(CAPTION, [JPEG], mime_type="image/gif"),
        json_body(CAPTION | {"images": [{"data": PNG_B64, "mime_type": "image/gif"}]}),
    ]
    ids = []
    for number, send in enumerate(sends, start=1):
        response = send(stack_corpus)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
        assert stack_corpus.tenant_job_count() == number
    with stack_corpus.client() as client:
        for job_id in ids:
            assert wait_done(client, job_id)["status"] == "succeeded"


def _frames(fmt: str, count: int) -> bytes:
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)][:count]
    first, *rest = [Image.new("RGB", (64, 48), colour) for colour in colours]
    extra: dict[str, Any] = {"save_all": True, "append_images": rest} if rest else {}
    return _encode(first, fmt, **extra)


@pytest.mark.parametrize(
    ("name", "data", "codes"),
    [
        ("coffee.gif", _frames("GIF", 4), ["gif_to_png", "first_frame"]),
        ("scan.bmp", _frames("BMP", 1), ["bmp_to_png"]),
        ("pages.tiff", _frames("TIFF", 3), ["tiff_to_png", "first_page"]),
    ],
)
def test_gif_bmp_and_tiff_are_converted_to_png_and_run(
    stack_corpus: Corpus, name: str, data: bytes, codes: list[str]
) -> None:
    """Issue 17: Gemini takes none of them; they become PNG at submit, and the job's input
    says so (another tenant's key: the harmless-oddities count stays its own)."""
    with stack_corpus.process_stack.client() as client:
        response = client.post(
            "/v1/jobs",
            data={"task": "caption", "options": json.dumps({"cache": False})},
            files=[("image", (name, data, "application/octet-stream"))],
        )
        assert response.status_code == 202, response.text
        job = wait_done(client, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    [image] = job["inputs"]
    assert image["mime_type"] == "image/png" and image["changes"] == codes
    assert (image["width"], image["height"]) == (64, 48)
