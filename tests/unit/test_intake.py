"""Base64 image data in JSON requests: every accepted spelling gives the same bytes."""

from __future__ import annotations

import base64

import pytest

from visionq.api.errors import ApiError
from visionq.api.request_body import decode_base64

DATA = bytes(range(256)) * 3 + b"\xfb\xff"  # standard base64 of this has '+' and '/'
STANDARD = base64.b64encode(DATA).decode()


@pytest.mark.parametrize(
    "text",
    [
        STANDARD,
        STANDARD.rstrip("="),
        base64.urlsafe_b64encode(DATA).decode(),
        base64.urlsafe_b64encode(DATA).decode().rstrip("="),
        f"data:image/png;base64,{STANDARD}",
        "\n".join(STANDARD[i : i + 76] for i in range(0, len(STANDARD), 76)),
        f"  {STANDARD[:100]} {STANDARD[100:]}\t",
    ],
    ids=["standard", "unpadded", "urlsafe", "urlsafe-unpadded", "data-url", "mime-lines", "spaces"],
)
def test_every_spelling_decodes_to_the_same_bytes(text: str) -> None:
    assert decode_base64(text, 0) == DATA


def test_empty_data_is_empty_bytes() -> None:
    assert decode_base64("", 0) == b""


@pytest.mark.parametrize("text", ["abc$", "ab=c", "é" + STANDARD, STANDARD + "A"])
def test_invalid_base64_is_a_422(text: str) -> None:
    with pytest.raises(ApiError) as caught:
        decode_base64(text, 2)
    assert (caught.value.status, caught.value.code) == (422, "invalid_base64")
    assert caught.value.message.startswith("images[2].data is not valid base64: ")
