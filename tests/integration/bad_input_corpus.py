"""The bad-input corpus's tools: the images, the Corpus (in process or the process stack)
and its fixtures, request builders, and the one error shape every refusal must have.

Every malformed case runs in process (the app from ``create_app`` behind FastAPI's
TestClient, on a migrated SQLite database and the session's real Redis: seconds, not
minutes); a sample of the cases, the raw-socket body limits and the accepted inputs run
against the process stack on SQLite and PostgreSQL, so the served app is still covered end
to end. Every refusal must be a 4xx, never a 5xx, in the API's one error shape
``{"error": {"code", "message"}}`` with the specific code stated and a message, and must
leave no job row behind (counted in the stack's database, before and after). Only true
rejects belong in test_bad_input.py: inputs the API accepts because they are harmless (a PNG
with bytes after IEND, a PNG declared as image/gif, a JSON ``mime_type`` that lies) are
checked as accepted in test_harmless_inputs.py. Import the fixtures into a test module to
use them.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, func, select

from tests.integration.conftest import Stack, redis_db
from tests.integration.inprocess import UnmanagedClient, in_process_api
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key, revoke_key
from visionq.models.tables import Job

TENANT = "bad-input"
# The stack's limits (tests/integration/conftest.py and the Settings defaults).
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_REQUEST_BYTES = 200 * 1024 * 1024
MAX_PIXELS = 120_000_000
MAX_PROMPT_CHARS = 20_000


# --- The images -------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, idat: bytes) -> bytes:
    """A PNG with valid chunks (and CRCs) around whatever IDAT and size it is given."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


PNG = _encode(Image.new("RGB", (64, 48), (200, 30, 30)), "PNG")
JPEG = _encode(Image.new("RGB", (64, 48), (30, 200, 30)), "JPEG", quality=90)
WEBP = _encode(Image.new("RGB", (64, 48), (30, 30, 200)), "WEBP")
PNG_B64 = base64.b64encode(PNG).decode()


def _jpeg_bomb() -> bytes:
    """A real JPEG whose start-of-frame is patched to claim 65000x65000 pixels."""
    sof = JPEG.index(b"\xff\xc0")
    return JPEG[: sof + 5] + struct.pack(">HH", 65000, 65000) + JPEG[sof + 9 :]


def _webp_bomb() -> bytes:
    """An extended WEBP whose VP8X header claims 16384x16384 pixels."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0" * 4 + (16383).to_bytes(3, "little") * 2
    body = b"WEBP" + vp8x + WEBP[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _real_png_over_the_pixel_limit() -> bytes:
    """A complete, decodable 11000x11000 1-bit PNG: 121 M pixels, 1 M over the limit."""
    side = 11_000
    assert side * side > MAX_PIXELS
    return _encode(Image.new("1", (side, side), 1), "PNG")


IMAGES: dict[str, bytes] = {
    "empty": b"",
    "truncated-png": PNG[: len(PNG) // 2],
    "truncated-jpeg": JPEG[: len(JPEG) // 2],
    "truncated-webp": WEBP[:30],
    "png-bad-crc": PNG[:29] + b"\0\0\0\0" + PNG[33:],
    "png-undecodable-idat": _png(8, 8, b"this is not a zlib stream"),
    "png-zero-width": _png(0, 10, zlib.compress(b"")),
    "jpeg-eoi-before-scan": JPEG[:20] + b"\xff\xd9",
    "text": b"hello, I am plain text\n",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)'
    b"</script></svg>",
    "html": b"<!doctype html><html><body><script>alert(1)</script></body></html>",
    "ico": _encode(Image.new("RGB", (16, 16)), "ICO"),
    "pdf": _encode(Image.new("RGB", (16, 16)), "PDF"),
    "avif-brand": b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + b"\0" * 64,
    # GIF header whose bytes are also valid JavaScript (GIFAR-style polyglot).
    "polyglot-gif-js": b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert(document.domain);",
    # A PNG signature and IHDR, then HTML where the image data should be.
    "polyglot-png-html": PNG[:33] + b"<html><script>alert(1)</script></html>",
    # HTML that carries a PNG signature further in: the sniffer reads the first bytes.
    "polyglot-html-png": b"<html><!-- \x89PNG\r\n\x1a\n -->" + PNG + b"</html>",
    "png-bomb-100000x100000": _png(100_000, 100_000, zlib.compress(b"\0" * 64)),
    "jpeg-bomb-65000x65000": _jpeg_bomb(),
    "webp-bomb-16384x16384": _webp_bomb(),
    "real-png-over-max-pixels": _real_png_over_the_pixel_limit(),
    "over-max-image-bytes": PNG + b"\0" * (MAX_IMAGE_BYTES + 1 - len(PNG)),
}


# --- Sending ----------------------------------------------------------------------------


@dataclass
class Corpus:
    """Where requests go (in process or the process stack), a key of a tenant of its own,
    a revoked key, and the job table."""

    open_client: Callable[[dict[str, str]], httpx.Client]
    key: str
    revoked_key: str
    engine: Engine
    stack: Stack | None = None

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        return self.open_client({"Authorization": f"Bearer {key or self.key}"} | headers)

    def anonymous(self) -> httpx.Client:
        return self.open_client({})

    @property
    def process_stack(self) -> Stack:
        assert self.stack is not None, "this test needs the process stack (stack_corpus)"
        return self.stack

    def job_count(self) -> int:
        """Every job row in the database (any tenant: auth failures have none)."""
        with self.engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Job)) or 0)

    def tenant_job_count(self) -> int:
        with self.engine.connect() as connection:
            query = select(func.count()).select_from(Job).where(Job.tenant == TENANT)
            return int(connection.scalar(query) or 0)


def _keys(engine: Engine) -> tuple[str, str]:
    """A key of the corpus's own tenant and a revoked one."""
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        key = create_key(session, name="bad-input", tenant=TENANT)
        revoked = create_key(session, name="bad-input-revoked", tenant=TENANT)
    with sessions.begin() as session:
        assert revoke_key(session, revoked.id)
    return key.secret, revoked.secret


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Corpus]:
    """The API app in process (tests/integration/inprocess.py): its own migrated SQLite
    database and Redis database, the same limits as the process stack (conftest.py)."""
    with in_process_api(
        Path(tmp_path_factory.mktemp("bad-input")),
        redis_db(redis_url),
        tenants=(),
        max_image_bytes=4 * 1024 * 1024,
        url_fetch_allowed_networks=["127.0.0.2/32"],
    ) as api:
        key, revoked = _keys(api.engine)
        yield Corpus(
            lambda headers: UnmanagedClient(api.app, headers=headers),
            key=key,
            revoked_key=revoked,
            engine=api.engine,
        )


@pytest.fixture(scope="module")
def stack_corpus(stack: Stack) -> Iterator[Corpus]:
    """The process stack (SQLite, then PostgreSQL): the served app, end to end."""
    engine = make_engine(stack.env["VISIONQ_DATABASE_URL"], pool_size=2)
    key, revoked = _keys(engine)

    def open_client(headers: dict[str, str]) -> httpx.Client:
        return httpx.Client(base_url=stack.api_url, headers=headers, timeout=60)

    yield Corpus(open_client, key=key, revoked_key=revoked, engine=engine, stack=stack)
    engine.dispose()


Send = Callable[[Corpus], httpx.Response]
Field = str | list[str]


CAPTION = {"task": "caption"}


BOUNDARY = "visionq-bad-input-7d1c"


def encode_multipart(fields: dict[str, Field], images: list[bytes], mime_type: str) -> bytes:
    """A multipart/form-data body (by hand: it may hold no file at all, or a NUL byte)."""
    parts = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            disposition = f'Content-Disposition: form-data; name="{name}"'
            parts.append(f"--{BOUNDARY}\r\n{disposition}\r\n\r\n{item}\r\n".encode())
    for index, blob in enumerate(images):
        disposition = f'Content-Disposition: form-data; name="image"; filename="img{index}.png"'
        head = f"--{BOUNDARY}\r\n{disposition}\r\nContent-Type: {mime_type}\r\n\r\n"
        parts.append(head.encode() + blob + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def multipart(
    fields: dict[str, Field],
    images: list[bytes | str] | None = None,
    *,
    mime_type: str = "image/png",
    path: str = "/v1/jobs",
    key: str | None = None,
) -> Send:
    """A multipart POST (one PNG unless told); an image given as a str names an IMAGES entry."""

    def send(corpus: Corpus) -> httpx.Response:
        items = [PNG] if images is None else images
        blobs = [IMAGES[item] if isinstance(item, str) else item for item in items]
        content = encode_multipart(fields, blobs, mime_type)
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        with corpus.client(_key(corpus, key)) as client:
            return client.post(path, content=content, headers={"content-type": content_type})

    return send


def unterminated(fields: dict[str, str], images: list[bytes]) -> Send:
    """A multipart body cut short before its closing ``--BOUNDARY--`` (a truncated upload:
    python-multipart parses the parts before the cut and drops the last one unnoticed)."""
    body = encode_multipart(fields, images, "image/png").removesuffix(
        f"--{BOUNDARY}--\r\n".encode()
    )
    return raw_body(body, f"multipart/form-data; boundary={BOUNDARY}")


def json_body(body: object, *, path: str = "/v1/jobs") -> Send:
    def send(corpus: Corpus) -> httpx.Response:
        with corpus.client() as client:
            return client.post(path, json=body)

    return send


def json_with_headers(body: object, **headers: str) -> Send:
    def send(corpus: Corpus) -> httpx.Response:
        with corpus.client(**headers) as client:
            return client.post("/v1/jobs", json=body)

    return send


def _url_job(url: str) -> Send:
    return json_body(CAPTION | {"images": [{"url": url}]})


def raw_body(content: bytes, content_type: str, *, path: str = "/v1/jobs") -> Send:
    def send(corpus: Corpus) -> httpx.Response:
        with corpus.client() as client:
            return client.post(path, content=content, headers={"content-type": content_type})

    return send


def get(path: str, params: dict[str, str] | None = None, *, method: str = "GET") -> Send:
    def send(corpus: Corpus) -> httpx.Response:
        with corpus.client() as client:
            return client.request(method, path, params=params)

    return send


def _key(corpus: Corpus, key: str | None) -> str | None:
    """Named keys: "revoked" is the corpus's revoked key; anything else is used as is."""
    return corpus.revoked_key if key == "revoked" else key


def _unauthenticated(headers: dict[str, str]) -> Send:
    def send(corpus: Corpus) -> httpx.Response:
        files = [("image", ("a.png", PNG, "image/png"))]
        with corpus.anonymous() as client:
            return client.post("/v1/jobs", data={"task": "caption"}, files=files, headers=headers)

    return send


def _json_images(*images: bytes) -> list[dict[str, str]]:
    return [{"data": base64.b64encode(image).decode()} for image in images]


def _with_json_images(body: dict[str, Any]) -> Send:
    """A JSON job with one good PNG, sent as raw bytes (so it may hold what json.dumps
    would not write: NaN, lone surrogate escapes)."""

    def send(corpus: Corpus) -> httpx.Response:
        text = json.dumps(body | {"images": [{"data": PNG_B64}]}, allow_nan=True)
        text = text.replace('"<NaN>"', "NaN").replace('"<INF>"', "1e400")
        text = text.replace('"<SURROGATE>"', '"\\ud800"')
        with corpus.client() as client:
            return client.post(
                "/v1/jobs", content=text.encode(), headers={"content-type": "application/json"}
            )

    return send


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The one error shape, with this status and code, and a message for people."""
    assert 400 <= status < 500
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip(), body
