"""A corpus of malformed requests: in process, and a sample against the running stack.

Every case runs in process (the app from ``create_app`` behind FastAPI's TestClient, on a
migrated SQLite database and the session's real Redis: seconds, not minutes); a sample of
the cases (``END_TO_END``), the raw-socket body limits and the accepted inputs run against
the process stack on SQLite and PostgreSQL, so the served app is still covered end to end.

Every case must be a 4xx, never a 5xx, in the API's one error shape
``{"error": {"code", "message"}}`` with the specific code stated here and a message, and
must leave no job row behind (counted in the stack's database, before and after).

Only true rejects belong here: inputs the API accepts because they are harmless (a PNG
with bytes after IEND, a PNG declared as image/gif, a JSON ``mime_type`` that lies) are
checked as accepted in ``test_harmless_oddities_are_accepted``.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from select import select as poll
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import Engine, func, select

from tests.integration.conftest import Stack, redis_db
from tests.integration.helpers import wait_done
from tests.integration.inprocess import UnmanagedClient, in_process_api
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import create_key, revoke_key
from visionq.models.tables import Job

pytestmark = pytest.mark.integration

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


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


UNRESOLVABLE = {
    "$defs": {"item": {"type": "string"}},
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item/"}}},
}


def _big_schema() -> dict[str, Any]:
    properties = {f"field_{i}": {"type": "string", "description": "x" * 100} for i in range(600)}
    return {"type": "object", "properties": properties}


def _deep_cursor() -> str:
    return base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")


UUID = str(uuid.UUID(int=1))
CAPTION = {"task": "caption"}
CUSTOM = {"task": "custom", "prompt": "Extract the total."}


def case(name: str, send: Send, status: int, code: str, *marks: pytest.MarkDecorator) -> Any:
    return pytest.param(send, status, code, id=name, marks=marks)


CASES = [
    # Images that are not PNG/JPEG/WEBP/HEIC/HEIF/GIF/BMP/TIFF, whatever they are declared as.
    case("zero-byte-file", multipart(CAPTION, ["empty"]), 422, "empty_image"),
    case("text-declared-image/png", multipart(CAPTION, ["text"]), 415, "unsupported_media_type"),
    case("svg", multipart(CAPTION, ["svg"], mime_type="image/svg+xml"), 415,
         "unsupported_media_type"),
    case("html", multipart(CAPTION, ["html"]), 415, "unsupported_media_type"),
    case("ico", multipart(CAPTION, ["ico"]), 415, "unsupported_media_type"),
    case("pdf", multipart(CAPTION, ["pdf"], mime_type="application/pdf"), 415,
         "unsupported_media_type"),
    case("avif-brand", multipart(CAPTION, ["avif-brand"]), 415, "unsupported_media_type"),
    # A GIF header over script text: GIFs are taken (converted to PNG), this one is broken.
    case("polyglot-gif-js", multipart(CAPTION, ["polyglot-gif-js"]), 422, "corrupt_image"),
    case("polyglot-html-carrying-png", multipart(CAPTION, ["polyglot-html-png"]), 415,
         "unsupported_media_type"),
    # Supported formats, broken.
    case("truncated-png", multipart(CAPTION, ["truncated-png"]), 422, "corrupt_image"),
    case("truncated-jpeg", multipart(CAPTION, ["truncated-jpeg"], mime_type="image/jpeg"), 422,
         "corrupt_image"),
    case("truncated-webp", multipart(CAPTION, ["truncated-webp"]), 422, "corrupt_image"),
    case("png-bad-crc", multipart(CAPTION, ["png-bad-crc"]), 422, "corrupt_image"),
    case("png-undecodable-idat", multipart(CAPTION, ["png-undecodable-idat"]), 422,
         "corrupt_image"),
    case("png-zero-width", multipart(CAPTION, ["png-zero-width"]), 422, "corrupt_image"),
    case("jpeg-eoi-before-scan", multipart(CAPTION, ["jpeg-eoi-before-scan"]), 422,
         "corrupt_image"),
    case("polyglot-png-header-then-html", multipart(CAPTION, ["polyglot-png-html"]), 422,
         "corrupt_image"),
    # Too big.
    case("png-bomb-100000x100000", multipart(CAPTION, ["png-bomb-100000x100000"]), 413,
         "image_too_large"),
    case("jpeg-bomb-65000x65000", multipart(CAPTION, ["jpeg-bomb-65000x65000"]), 413,
         "image_too_large"),
    case("webp-bomb-16384x16384", multipart(CAPTION, ["webp-bomb-16384x16384"]), 413,
         "image_too_large"),
    case("real-png-over-max-pixels",
         multipart(CAPTION, ["real-png-over-max-pixels"]), 413,
         "image_too_large"),
    case("image-over-max-image-bytes", multipart(CAPTION, ["over-max-image-bytes"]), 413,
         "payload_too_large"),
    case("form-field-over-1mb", multipart({"task": "ask", "prompt": "x" * (1024 * 1024 + 1)}),
         413, "payload_too_large"),
    # How many images.
    case("17-images", multipart({"task": "ask", "prompt": "?"}, [PNG] * 17), 422,
         "too_many_images"),
    case("17-images-json", json_body({"task": "ask", "prompt": "?",
                                      "images": _json_images(*[PNG] * 17)}), 422,
         "too_many_images"),
    case("caption-with-2-images", multipart(CAPTION, [PNG, JPEG]), 422, "too_many_images"),
    case("compare-with-1-image", multipart({"task": "compare"}), 422, "too_few_images"),
    case("no-image-field", multipart(CAPTION, []), 422, "missing_image"),
    # Multipart structure.
    case("image-as-text-field", multipart({"task": "caption", "image": "not a file"}, []), 422,
         "invalid_request"),
    case("unknown-form-field", multipart({"task": "caption", "colour": "red"}), 422,
         "invalid_request"),
    case("task-given-twice", multipart({"task": ["caption", "detect"]}), 422, "invalid_request"),
    case("multipart-without-boundary", raw_body(b"task=caption", "multipart/form-data"), 400,
         "invalid_multipart"),
    case("multipart-garbage", raw_body(b"\x00garbage", "multipart/form-data; boundary=xyz"),
         400, "invalid_multipart"),
    # Task, model, labels, prompt.
    case("unknown-task", multipart({"task": "paint"}), 422, "unknown_task"),
    case("missing-task", multipart({}), 422, "missing_task"),
    case("model-with-space", multipart(CAPTION | {"model": "gemini 2.5"}), 422, "invalid_model"),
    case("model-path-traversal", multipart(CAPTION | {"model": "../../v1/files"}), 422,
         "invalid_model"),
    case("model-101-chars", multipart(CAPTION | {"model": "g" * 101}), 422, "invalid_model"),
    case("classify-without-labels", multipart({"task": "classify"}), 422, "missing_labels"),
    case("classify-empty-label", multipart({"task": "classify", "labels": ["cat", " "]}), 422,
         "missing_labels"),
    case("classify-trailing-comma", multipart({"task": "classify", "labels": "cat,dog,"}), 422,
         "missing_labels"),
    case("duplicate-labels", multipart({"task": "classify", "labels": "cat,dog,Cat"}), 422,
         "duplicate_labels"),
    case("201-labels", multipart({"task": "classify",
                                  "labels": ",".join(f"l{i}" for i in range(201))}), 422,
         "too_many_labels"),
    case("label-201-chars", multipart({"task": "classify", "labels": ["a" * 201, "b"]}), 422,
         "label_too_long"),
    case("labels-not-strings", multipart({"task": "classify", "labels": "[1, 2]"}), 422,
         "invalid_request"),
    case("labels-bad-json", multipart({"task": "classify", "labels": '["a", "b"'}), 422,
         "invalid_request"),
    case("labels-lone-surrogate", multipart({"task": "classify", "labels": '["\\ud800", "b"]'}),
         422, "invalid_request"),
    case("labels-on-caption", multipart(CAPTION | {"labels": "cat,dog"}), 422,
         "unexpected_labels"),
    case("ask-without-prompt", multipart({"task": "ask"}), 422, "missing_prompt"),
    case("ask-blank-prompt", multipart({"task": "ask", "prompt": " \n\t "}), 422,
         "missing_prompt"),
    case("custom-without-prompt", multipart({"task": "custom"}), 422, "missing_prompt"),
    case("prompt-over-limit", multipart({"task": "ask", "prompt": "x" * (MAX_PROMPT_CHARS + 1)}),
         422, "prompt_too_long"),
    case("nul-in-prompt", multipart({"task": "ask", "prompt": "what\x00is this"}), 422,
         "invalid_text"),
    case("nul-in-label", multipart({"task": "classify", "labels": ["c\x00at", "dog"]}), 422,
         "invalid_text"),
    # Options.
    case("options-not-an-object", multipart(CAPTION | {"options": "[1, 2]"}), 422,
         "invalid_options"),
    case("options-bad-json", multipart(CAPTION | {"options": "{temperature: 1}"}), 422,
         "invalid_options"),
    case("unknown-option", multipart(CAPTION | {"options": '{"temprature": 1}'}), 422,
         "invalid_options"),
    case("temperature-hot", multipart(CAPTION | {"options": '{"temperature": "hot"}'}), 422,
         "invalid_options"),
    case("temperature-nan", multipart(CAPTION | {"options": '{"temperature": NaN}'}), 422,
         "invalid_options"),
    case("negative-max-side", multipart(CAPTION | {"options": '{"max_side": -1}'}), 422,
         "invalid_options"),
    case("max-side-huge-integer",
         multipart(CAPTION | {"options": '{"max_side": 1' + "0" * 5000 + "}"}), 422,
         "invalid_options"),
    case("media-resolution-count-mismatch",
         multipart(CAPTION | {"options": '{"image_media_resolution": ["LOW", "HIGH"]}'}), 422,
         "invalid_options"),
    # Schemas (task custom).
    case("schema-invalid", multipart(CUSTOM | {"schema": '{"type": "nope"}'}), 422,
         "invalid_schema"),
    case("schema-invalid-regex", multipart(CUSTOM | {"schema": '{"pattern": "("}'}), 422,
         "invalid_schema"),
    case("schema-remote-ref", multipart(CUSTOM | {"schema": '{"$ref": "http://127.0.0.1:9/s"}'}),
         422, "invalid_schema"),
    case("schema-file-ref", multipart(CUSTOM | {"schema": '{"$ref": "file:///etc/passwd"}'}),
         422, "invalid_schema"),
    # Issue 17: a $ref that resolves to nothing was accepted, billed, blamed on Gemini.
    case("schema-ref-to-nothing", multipart(CUSTOM | {"schema": json.dumps(UNRESOLVABLE)}), 422,
         "invalid_schema"),
    case("schema-ref-not-a-subschema",
         multipart(CUSTOM | {"schema": '{"$defs": {"x": {}}, "items": {"$ref": "#/$defs"}}'}),
         422, "invalid_schema"),
    case("schema-not-an-object", multipart(CUSTOM | {"schema": '["type", "string"]'}), 422,
         "invalid_schema"),
    case("schema-bad-json", multipart(CUSTOM | {"schema": '{"type": '}), 422, "invalid_schema"),
    case("schema-nested-too-deep", multipart(CUSTOM | {"schema": json.dumps(_nested(100))}),
         422, "invalid_schema"),
    case("schema-json-nested-3000", multipart(CUSTOM | {"schema": '{"a":' + "[" * 3000 + "]"
                                                        * 3000 + "}"}), 422, "invalid_schema"),
    case("schema-huge-integer",
         multipart(CUSTOM | {"schema": '{"maximum": 1' + "0" * 5000 + "}"}), 422,
         "invalid_schema"),
    case("schema-lone-surrogate", multipart(CUSTOM | {"schema": '{"title": "\\udc00"}'}), 422,
         "invalid_schema"),
    case("schema-too-large", multipart(CUSTOM | {"schema": json.dumps(_big_schema())}), 422,
         "schema_too_large"),
    case("schema-on-caption", multipart(CAPTION | {"schema": '{"type": "string"}'}), 422,
         "unexpected_schema"),
    case("schema-nul", json_body(CUSTOM | {"schema": {"title": "a\x00b"},
                                           "images": _json_images(PNG)}), 422, "invalid_text"),
    case("schema-nan-json", _with_json_images(CUSTOM | {"schema": {"maximum": "<NaN>"}}), 422,
         "invalid_schema"),
    case("schema-infinity-json", _with_json_images(CUSTOM | {"schema": {"maximum": "<INF>"}}),
         422, "invalid_schema"),
    case("schema-not-an-object-json", json_body(CUSTOM | {"schema": [1],
                                                          "images": _json_images(PNG)}), 422,
         "invalid_schema"),
    # Image URLs (SSRF) and idempotency keys.
    case("url-file-scheme", _url_job("file:///etc/passwd"), 422, "url_scheme_not_allowed"),
    case("url-loopback", _url_job("http://127.0.0.1:9/x.png"), 422, "url_host_not_allowed"),
    case("url-decimal-ip", _url_job("http://2130706433/x.png"), 422, "url_host_not_allowed"),
    case("url-metadata", _url_job("http://169.254.169.254/latest/meta-data/"), 422,
         "url_host_not_allowed"),
    case("url-and-data", json_body(CAPTION | {"images": [{"url": "http://a.example/x.png",
                                                          "data": PNG_B64}]}), 422,
         "invalid_request"),
    case("url-not-a-url", _url_job("not a url"), 422, "url_invalid"),
    case("idempotency-key-with-spaces", json_with_headers(
        CAPTION | {"images": _json_images(PNG)}, **{"Idempotency-Key": "a b"}), 400,
         "invalid_idempotency_key"),
    case("idempotency-key-too-long", json_with_headers(
        CAPTION | {"images": _json_images(PNG)}, **{"Idempotency-Key": "k" * 300}), 400,
         "invalid_idempotency_key"),
    # JSON bodies.
    case("invalid-json", raw_body(b'{"task": "caption", ', "application/json"), 422,
         "invalid_request"),
    case("json-not-an-object", json_body([CAPTION]), 422, "invalid_request"),
    case("json-a-string", json_body("caption"), 422, "invalid_request"),
    case("json-unknown-field", json_body(CAPTION | {"colour": "red",
                                                    "images": _json_images(PNG)}), 422,
         "invalid_request"),
    case("json-unknown-image-field", json_body(CAPTION | {"images": [{"data": PNG_B64,
                                                                      "colour": "red"}]}), 422,
         "invalid_request"),
    case("json-no-images", json_body(CAPTION | {"images": []}), 422, "invalid_request"),
    case("json-task-not-a-string", json_body({"task": 7, "images": _json_images(PNG)}), 422,
         "invalid_request"),
    case("json-invalid-base64", json_body(CAPTION | {"images": [{"data": "%%%not base64%%%"}]}),
         422, "invalid_base64"),
    case("json-base64-one-char-over", json_body(CAPTION | {"images": [{"data": "QUJD" + "Q"}]}),
         422, "invalid_base64"),
    case("json-empty-image", json_body(CAPTION | {"images": [{"data": ""}]}), 422,
         "empty_image"),
    case("json-text-declared-png", json_body(CAPTION | {"images": [
        {"data": base64.b64encode(b"plain text").decode(), "mime_type": "image/png"}]}), 415,
         "unsupported_media_type"),
    case("json-png-bomb", json_body(CAPTION | {
        "images": _json_images(IMAGES["png-bomb-100000x100000"])}), 413, "image_too_large"),
    case("json-lone-surrogate-prompt", _with_json_images({"task": "ask",
                                                          "prompt": "<SURROGATE>"}), 422,
         "invalid_request"),
    case("json-options-not-an-object", json_body(CAPTION | {"options": "fast",
                                                            "images": _json_images(PNG)}), 422,
         "invalid_options"),
    case("json-temperature-hot", json_body(CAPTION | {"options": {"temperature": "hot"},
                                                      "images": _json_images(PNG)}), 422,
         "invalid_options"),
    # Transport.
    case("content-type-text-plain", raw_body(b"task=caption", "text/plain"), 415,
         "unsupported_media_type"),
    case("content-type-urlencoded", raw_body(b"task=caption",
                                             "application/x-www-form-urlencoded"), 415,
         "unsupported_media_type"),
    # Authentication.
    case("no-authorization", _unauthenticated({}), 401, "unauthorized"),
    case("basic-auth", _unauthenticated({"Authorization": "Basic dXNlcjpwYXNz"}), 401,
         "unauthorized"),
    case("empty-bearer", _unauthenticated({"Authorization": "Bearer"}), 401, "unauthorized"),
    case("unknown-bearer-key", _unauthenticated({"Authorization": "Bearer vq_nope"}), 401,
         "invalid_api_key"),
    case("revoked-key", multipart(CAPTION, key="revoked"), 401, "invalid_api_key"),
    # The other routes.
    case("get-job-not-a-uuid", get("/v1/jobs/not-a-uuid"), 404, "job_not_found"),
    case("get-job-unknown-uuid", get(f"/v1/jobs/{UUID}"), 404, "job_not_found"),
    case("cancel-job-not-a-uuid", get("/v1/jobs/not-a-uuid/cancel", method="POST"), 404,
         "job_not_found"),
    case("annotated-png-not-a-uuid", get("/v1/jobs/not-a-uuid/annotated.png"), 404,
         "job_not_found"),
    case("mask-index-not-a-number", get(f"/v1/jobs/{UUID}/masks/first.png"), 422,
         "invalid_request"),
    case("list-cursor-garbage", get("/v1/jobs", {"cursor": "garbage"}), 400, "invalid_cursor"),
    case("list-cursor-deeply-nested", get("/v1/jobs", {"cursor": _deep_cursor()}), 400,
         "invalid_cursor"),
    case("list-limit-0", get("/v1/jobs", {"limit": "0"}), 422, "invalid_request"),
    case("list-limit-not-a-number", get("/v1/jobs", {"limit": "ten"}), 422, "invalid_request"),
    case("list-status-bogus", get("/v1/jobs", {"status": "bogus"}), 422, "invalid_request"),
    case("delete-jobs", get("/v1/jobs", method="DELETE"), 405, "method_not_allowed"),
    case("unknown-route", get("/v1/nothing-here"), 404, "not_found"),
    case("estimate-unknown-task", multipart({"task": "paint"}, path="/v1/estimate"), 422,
         "unknown_task"),
    case("estimate-corrupt-image", multipart(CAPTION, ["truncated-png"], path="/v1/estimate"),
         422, "corrupt_image"),
    case("estimate-invalid-json", raw_body(b"{", "application/json", path="/v1/estimate"), 422,
         "invalid_request"),
    case("estimate-text-plain", raw_body(b"x", "text/plain", path="/v1/estimate"), 415,
         "unsupported_media_type"),
    case("estimate-bad-option", json_body(CAPTION | {"options": {"max_side": -5},
                                                     "images": _json_images(PNG)},
                                          path="/v1/estimate"), 422, "invalid_options"),
    case("estimate-revoked-key", multipart(CAPTION, path="/v1/estimate", key="revoked"), 401,
         "invalid_api_key"),
]  # fmt: skip


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


@pytest.mark.parametrize(("send", "status", "code"), CASES)
def test_malformed_request_is_refused(corpus: Corpus, send: Send, status: int, code: str) -> None:
    before = corpus.job_count()
    response = send(corpus)
    assert_error(response, status, code)
    assert corpus.job_count() == before, "a refused request left a job behind"


# The cases run end to end too, on each database: one of each refusal code (the first case
# that gives it), so every error path is also seen through the served app.
END_TO_END = [case for index, case in enumerate(CASES) if case.values[2] not in
              {other.values[2] for other in CASES[:index]}]  # fmt: skip


@pytest.mark.parametrize(("send", "status", "code"), END_TO_END)
def test_malformed_request_is_refused_end_to_end(
    stack_corpus: Corpus, send: Send, status: int, code: str
) -> None:
    before = stack_corpus.job_count()
    response = send(stack_corpus)
    assert_error(response, status, code)
    assert stack_corpus.job_count() == before, "a refused request left a job behind"


def test_an_unresolvable_ref_is_named_in_the_refusal(corpus: Corpus) -> None:
    before = corpus.job_count()
    response = multipart(CUSTOM | {"schema": json.dumps(UNRESOLVABLE)})(corpus)
    assert_error(response, 422, "invalid_schema")
    message = response.json()["error"]["message"]
    assert "'#/$defs/item/'" in message and "#/properties/items/items/$ref" in message
    assert corpus.job_count() == before


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert len({param.id for param in CASES}) == len(CASES)


# --- Bodies over max_request_bytes --------------------------------------------------------


def _connect(corpus: Corpus) -> socket.socket:
    url = httpx.URL(corpus.process_stack.api_url)
    assert url.port is not None
    return socket.create_connection((url.host, url.port), timeout=30)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the one HTTP/1.1 response on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = (line.partition(":") for line in lines[1:])
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the response"
        body += chunk
    return status, json.loads(body[:length])


def _request_head(corpus: Corpus, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {corpus.key}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=b"])
def test_declared_content_length_over_the_limit_is_413_before_the_body(
    stack_corpus: Corpus, content_type: str
) -> None:
    """Only the headers are sent: the answer cannot have waited for (or buffered) the body."""
    before = stack_corpus.job_count()
    declared = MAX_REQUEST_BYTES + 1
    head = _request_head(
        stack_corpus, "/v1/jobs", {"Content-Type": content_type, "Content-Length": str(declared)}
    )
    started = time.monotonic()
    with _connect(stack_corpus) as sock:
        sock.sendall(head)
        status, body = _read_response(sock)
    assert time.monotonic() - started < 5
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert f"{declared:,}" in body["error"]["message"]
    assert stack_corpus.job_count() == before


def test_chunked_json_body_over_the_limit_is_413(stack_corpus: Corpus) -> None:
    """No Content-Length: the limit holds while reading, and the answer comes as soon as it
    is crossed (the client stops sending when the response arrives)."""
    before = stack_corpus.job_count()
    head = _request_head(
        stack_corpus,
        "/v1/jobs",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    piece = b" " * (1024 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    with _connect(stack_corpus) as sock:
        sock.sendall(head + b'7\r\n{"task"\r\n')
        while sent <= MAX_REQUEST_BYTES + 16 * len(piece):
            readable, _, _ = poll([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed; its answer is still to be read
            sent += len(piece)
        status, body = _read_response(sock)
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert MAX_REQUEST_BYTES < sent < MAX_REQUEST_BYTES + 16 * len(piece)
    assert stack_corpus.job_count() == before


# --- What is accepted, and the count that proves nothing was left behind ------------------


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
    ("name", "data", "note"),
    [
        ("coffee.gif", _frames("GIF", 4), "converted GIF to PNG (first frame of 4)"),
        ("scan.bmp", _frames("BMP", 1), "converted BMP to PNG"),
        ("pages.tiff", _frames("TIFF", 3), "converted TIFF to PNG (first page of 3)"),
    ],
)
def test_gif_bmp_and_tiff_are_converted_to_png_and_run(
    stack_corpus: Corpus, name: str, data: bytes, note: str
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
    assert image["mime_type"] == "image/png" and image["changes"] == [note]
    assert (image["width"], image["height"]) == (64, 48)


def test_a_bad_file_is_named_by_its_file_name(corpus: Corpus) -> None:
    """Issue 17, bug 3: the error named "Image #1", not the file the user sent."""
    before = corpus.job_count()
    with corpus.client() as client:
        response = client.post(
            "/v1/jobs",
            data={"task": "compare"},
            files=[
                ("image", ("shapes.png", PNG, "image/png")),
                ("image", ("coffee.gif", b"not an image at all\n", "image/gif")),
            ],
        )
    assert_error(response, 415, "unsupported_media_type")
    message = response.json()["error"]["message"]
    assert message.startswith("Image 'coffee.gif': ") and "#" not in message
    assert corpus.job_count() == before
