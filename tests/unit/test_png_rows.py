"""A PNG that keeps its bytes is checked by inflating its rows, not by decoding its pixels."""

import io
import random
import struct
import zlib
from typing import Any

import pytest
from PIL import Image, ImageFile

import visionq.vision.prepare
from tests.unit.pngbytes import chunks_of, png, png_chunk
from visionq.vision.formats import ImageRejectedError
from visionq.vision.prepare import PreparedImage, prepare_image

LIMIT = 50_000_000


def noisy(mode: str, size: tuple[int, int], seed: int = 1) -> Image.Image:
    rng = random.Random(seed)
    bands = len(mode)
    return Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * bands))


def encode(image: Image.Image, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    return out.getvalue()


def rows_png(
    raw: bytes, *, width: int = 10, height: int = 10, stream: bytes | None = None
) -> bytes:
    """An 8-bit RGB PNG whose IDAT holds ``raw`` (filter bytes and rows), compressed."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(raw) if stream is None else stream
    return png([(b"IHDR", header), (b"IDAT", idat), (b"IEND", b"")])


def good_rows(width: int = 10, height: int = 10) -> bytes:
    return b"".join(bytes([row % 5]) + bytes(range(width * 3)) for row in range(height))


@pytest.fixture
def pixel_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The formats whose pixels Pillow decoded (ImageFile.load) during the test."""
    loaded: list[str] = []
    load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        loaded.append(str(self.format))
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return loaded


def full_decode(data: bytes) -> PreparedImage | str:
    """prepare_image as it was before the row check: every PNG decoded by Pillow."""
    kept_as_is = visionq.vision.prepare.png_kept_as_is
    visionq.vision.prepare.png_kept_as_is = lambda *_: False  # type: ignore[assignment]
    try:
        return prepare_image(data, max_pixels=LIMIT)
    except ImageRejectedError as exc:
        return exc.code
    finally:
        visionq.vision.prepare.png_kept_as_is = kept_as_is


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_a_plain_png_keeps_its_bytes_without_a_pixel_decode(
    mode: str, pixel_loads: list[str]
) -> None:
    data = encode(noisy(mode, (400, 300)))
    assert len(chunks_of(data)) > 3  # Pillow splits the data over several IDAT chunks
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared == PreparedImage(data, "image/png", 400, 300, "image/png", ())
    assert pixel_loads == []


def test_metadata_before_the_image_data_still_keeps_the_bytes(pixel_loads: list[str]) -> None:
    image = noisy("RGB", (40, 30))
    info = {"icc_profile": b"not checked here", "dpi": (72, 72)}
    data = encode(image, **info)
    kinds = [kind for kind, _ in chunks_of(data)]
    assert b"iCCP" in kinds and b"pHYs" in kinds
    comment = png_chunk(b"tEXt", b"Comment\x00made by a test")
    data = data[:33] + comment + data[33:]
    assert prepare_image(data, max_pixels=LIMIT).data is data
    assert pixel_loads == []


def xmp(orientation: int) -> bytes:
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        f'tiff:Orientation="{orientation}"/></rdf:RDF></x:xmpmeta>'
    )
    return b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + packet.encode()


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("chunk after the data", lambda c: [*c[:-1], (b"tEXt", b"Note\x00late"), *c[-1:]]),
        ("XMP orientation", lambda c: [*c[:1], (b"iTXt", xmp(6)), *c[1:]]),
        ("EXIF block", lambda c: [*c[:1], (b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00"), *c[1:]]),
    ],
)
def test_a_png_that_may_change_is_decoded_in_full(
    name: str, edit: Any, pixel_loads: list[str]
) -> None:
    data = png(edit(chunks_of(encode(noisy("RGB", (30, 20))))))
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert pixel_loads, name
    assert prepared == full_decode(data)
    if name == "XMP orientation":
        assert prepared.changes == ("exif_transposed",) and (prepared.width, prepared.height) == (
            20,
            30,
        )


@pytest.mark.parametrize(
    ("image", "params"),
    [
        (noisy("RGB", (30, 20)), {"interlace": 1}),
        (noisy("RGB", (30, 20)).convert("P"), {}),
        (noisy("L", (30, 20)).convert("1"), {}),
        (noisy("RGB", (30, 20)), {"transparency": (0, 0, 0)}),
        (Image.new("I;16", (30, 20), 1000), {}),
    ],
)
def test_other_layouts_are_decoded_in_full(
    image: Image.Image, params: dict[str, Any], pixel_loads: list[str]
) -> None:
    data = encode(image, **params)
    assert prepare_image(data, max_pixels=LIMIT) == full_decode(data)
    assert pixel_loads


def reject(data: bytes) -> str:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data, max_pixels=LIMIT)
    assert caught.value.code == "corrupt_image"
    return caught.value.message


def test_an_unknown_row_filter_is_corrupt() -> None:
    raw = bytearray(good_rows())
    raw[31 * 7] = 9  # the filter byte of row 8
    assert "a row has an unknown filter type (9)" in reject(rows_png(bytes(raw)))


def test_missing_rows_are_a_truncated_png() -> None:
    assert "the PNG data is truncated" in reject(rows_png(good_rows()[:-40]))


def test_compressed_data_that_does_not_inflate_is_corrupt() -> None:
    stream = bytearray(zlib.compress(good_rows()))
    stream[2:6] = b"\xff\xff\xff\xff"
    assert "its image data does not inflate" in reject(rows_png(b"", stream=bytes(stream)))


@pytest.mark.parametrize(
    ("name", "stream"),
    [
        ("wrong checksum", zlib.compress(good_rows())[:-4] + b"\x00\x00\x00\x00"),
        ("no end of stream", zlib.compress(good_rows())[:-4]),
    ],
)
def test_a_stream_without_its_checksum_is_corrupt_even_with_every_row(
    name: str, stream: bytes
) -> None:
    """Stricter than Pillow, which stops reading at the last row: the Adler-32 is how a
    corrupt stream that still inflates to the right length is caught."""
    message = reject(rows_png(b"", stream=stream))
    assert "does not inflate" in message or "does not end" in message, name


def test_extra_data_after_the_rows_is_ignored_as_pillow_does() -> None:
    data = rows_png(good_rows() + bytes(50))
    assert prepare_image(data, max_pixels=LIMIT).data is data


def test_data_inflating_far_past_the_rows_is_refused_without_reading_it_all() -> None:
    bomb = zlib.compress(good_rows() + bytes(8 * 1024 * 1024), 9)  # 8 MB from ~8 KB
    assert "longer than its rows" in reject(rows_png(b"", stream=bomb))


def _mutated(base: bytes, rng: random.Random) -> bytes:
    """``base`` with its compressed data damaged in one of several ways, CRCs made valid."""
    chunks = chunks_of(base)
    stream = b"".join(payload for kind, payload in chunks if kind == b"IDAT")
    how = rng.randrange(5)
    if how == 0:
        damaged = bytearray(stream)
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        stream = bytes(damaged)
    elif how == 1:
        stream = stream[: rng.randrange(len(stream))]
    elif how == 2:
        raw = bytearray(zlib.decompress(stream))
        raw[rng.randrange(len(raw))] = rng.choice([0, 4, 5, 200])
        stream = zlib.compress(bytes(raw))
    elif how == 3:
        stream = zlib.compress(zlib.decompress(stream)[: -rng.randint(1, 30)])
    else:
        stream += rng.randbytes(rng.randint(1, 20))
    cut = rng.randint(1, max(1, len(stream)))
    parts = [(b"IDAT", stream[:cut]), (b"IDAT", stream[cut:])]
    return png([chunks[0], *parts, (b"IEND", b"")])


def test_the_row_check_never_accepts_what_a_full_decode_refuses() -> None:
    rng = random.Random(7)
    bases = [
        encode(noisy(mode, (23, 9), seed)) for seed, mode in enumerate(["RGB", "RGBA", "L", "LA"])
    ]
    outcomes = set()
    for _ in range(400):
        data = _mutated(rng.choice(bases), rng)
        full = full_decode(data)
        try:
            fast: PreparedImage | str = prepare_image(data, max_pixels=LIMIT)
        except ImageRejectedError as exc:
            fast = exc.code
        outcomes.add((isinstance(full, str), isinstance(fast, str)))
        if isinstance(fast, PreparedImage):
            assert fast == full
    # Both refuse, both accept, and only the checksum cases the full decode let through.
    assert outcomes <= {(True, True), (False, False), (False, True)}
    assert (True, True) in outcomes and (False, False) in outcomes
