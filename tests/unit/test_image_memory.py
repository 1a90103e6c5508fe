"""Memory of image decodes: the cost known before decoding, the per-image refusal, the
process budget, and their use at submit (api/job_checks.py) and in downscale."""

from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image

from visionq.api.errors import ApiError
from visionq.api.job_checks import admit_image
from visionq.models.settings import Settings
from visionq.vision.formats import HEIF, JPEG, PNG, WEBP, ImageRejectedError, register_heif
from visionq.vision.memory import (
    MIB,
    DecodeLimits,
    MemoryBudget,
    MemoryBusyError,
    decode_bytes,
    process_limits,
)
from visionq.vision.prepare import downscale, prepare_image


def _limits(per_image_mib: int, budget_mib: int = 1024, wait_s: float = 5.0) -> DecodeLimits:
    return DecodeLimits(per_image_mib * MIB, MemoryBudget(budget_mib * MIB, wait_s))


def _image(fmt: str, side: int, **params: object) -> bytes:
    if fmt == "HEIF":
        register_heif()
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 40)).save(out, fmt, **params)
    return out.getvalue()


# --- the cost --------------------------------------------------------------------------


def test_cost_counts_the_decoder_not_the_file() -> None:
    # 10000x10000: WEBP decodes through libwebp's canvases (~15 bytes/pixel measured),
    # HEIF through libheif's planes (~7), a JPEG at 1/8 scale needs almost nothing.
    webp = decode_bytes(10_000, 10_000, WEBP, "RGB")
    heif = decode_bytes(10_000, 10_000, HEIF, "RGB")
    jpeg_draft = decode_bytes(10_000, 10_000, JPEG, "RGB", scale=8)
    assert webp > 1500 * MIB
    assert 700 * MIB < heif < webp
    assert jpeg_draft < 10 * MIB
    # A progressive JPEG keeps every coefficient (2 bytes per sample) whatever the scale.
    progressive = decode_bytes(10_000, 10_000, JPEG, "RGB", scale=8, progressive_components=3)
    assert progressive > 600 * MIB


def test_cost_grows_with_mode_and_copies() -> None:
    gray = decode_bytes(1000, 1000, PNG, "L")
    rgb = decode_bytes(1000, 1000, PNG, "RGB")
    turned = decode_bytes(1000, 1000, PNG, "RGB", copies=1)
    assert gray < rgb < turned
    assert rgb >= 4 * 1000 * 1000  # Pillow keeps RGB as 4 bytes a pixel


# --- refusal before decoding -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("WEBP", {"lossless": True}), ("HEIF", {"quality": 50}), ("JPEG", {"progressive": True})],
)
def test_over_the_bound_is_refused_naming_it(fmt: str, params: dict[str, object]) -> None:
    data = _image(fmt, 2000, **params)
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data, max_pixels=120_000_000, limits=_limits(16))
    assert caught.value.code == "image_too_large"
    message = caught.value.message
    assert "16 MB allowed per image" in message and "downscale it" in message
    # The suggested size does fit.
    suggested = message.split("for example to ")[1].split(")")[0]
    width, height = (int(n) for n in suggested.split("x"))
    assert width < 2000 and height < 2000


def test_webp_is_refused_before_pillow_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # libwebp's decoder sets up its canvases when Pillow opens the file: refuse first.
    data = _image("WEBP", 2000, lossless=True)

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the WEBP was opened")

    monkeypatch.setattr(Image, "open", no_open)
    with pytest.raises(ImageRejectedError, match="allowed per image"):
        prepare_image(data, max_pixels=120_000_000, limits=_limits(16))


def test_cheap_paths_fit_a_small_bound() -> None:
    # A PNG kept as it is is only inflated; a baseline JPEG is checked at 1/8 scale.
    for fmt in ("PNG", "JPEG"):
        prepared = prepare_image(_image(fmt, 6000), max_pixels=120_000_000, limits=_limits(16))
        assert (prepared.width, prepared.height) == (6000, 6000)


def test_within_the_bound_is_prepared_as_without_limits() -> None:
    data = _image("WEBP", 600, lossless=True)
    assert prepare_image(data, max_pixels=10**8, limits=_limits(64)) == prepare_image(
        data, max_pixels=10**8
    )


# --- downscale ---------------------------------------------------------------------------


def test_downscale_decodes_a_jpeg_at_a_dct_scale() -> None:
    # Full size, this 6000x6000 JPEG needs ~150 MB; at 1/4 scale it fits 32 MB.
    result = downscale(_image("JPEG", 6000), JPEG, max_side=1024, limits=_limits(32))
    assert result is not None and result[2:] == (1024, 1024)


def test_downscale_over_the_bound_is_refused() -> None:
    with pytest.raises(ImageRejectedError, match="allowed per image"):
        downscale(_image("PNG", 3000), PNG, max_side=512, limits=_limits(16))


# --- the budget --------------------------------------------------------------------------


def test_budget_makes_decodes_wait_their_turn() -> None:
    budget = MemoryBudget(100, wait_s=5)
    order: list[str] = []
    with budget.reserve(70):
        waiter = threading.Thread(target=lambda: _take(budget, 50, order))
        waiter.start()
        time.sleep(0.05)
        order.append("first done")
    waiter.join(5)
    assert order == ["first done", "second ran"]
    assert budget.used == 0


def _take(budget: MemoryBudget, nbytes: int, order: list[str]) -> None:
    with budget.reserve(nbytes):
        order.append("second ran")


def test_budget_wait_is_bounded() -> None:
    budget = MemoryBudget(100, wait_s=0.05)
    with budget.reserve(100), pytest.raises(MemoryBusyError) as caught, budget.reserve(1):
        pass
    assert caught.value.retry_after_s >= 1
    assert budget.used == 0
    with budget.reserve(1000):  # more than the budget: capped, so it runs alone
        assert budget.used == 100


# --- at submit -----------------------------------------------------------------------------


def _settings(**values: object) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def test_submit_refuses_413_naming_the_bound() -> None:
    settings = _settings(image_decode_max_bytes=16 * MIB)
    with pytest.raises(ApiError) as caught:
        admit_image(_image("WEBP", 2000, lossless=True), "Image #1", settings)
    assert (caught.value.status, caught.value.code) == (413, "image_too_large")
    assert "Image #1" in caught.value.message and "16 MB allowed" in caught.value.message


def test_submit_answers_503_with_retry_after_when_the_budget_stays_taken() -> None:
    settings = _settings(
        image_decode_max_bytes=64 * MIB,
        image_decode_budget_bytes=64 * MIB,
        image_decode_wait_s=0.05,
    )
    budget = process_limits(64 * MIB, 64 * MIB, 0.05).budget
    data = _image("WEBP", 600, lossless=True)
    with budget.reserve(64 * MIB), pytest.raises(ApiError) as caught:
        admit_image(data, "Image #1", settings)
    assert (caught.value.status, caught.value.code) == (503, "unavailable")
    assert caught.value.headers and int(caught.value.headers["Retry-After"]) >= 1
    assert admit_image(data, "Image #1", settings).width == 600  # once the budget is free
