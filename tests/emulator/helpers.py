"""Small helpers shared by the emulator tests."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from google import genai
from google.genai import types

from tests.emulator.conftest import MODEL
from visionq.emulator.app import create_app
from visionq.emulator.config import EmulatorConfig
from visionq.emulator.server import bind_socket
from visionq.emulator.shapes import Shape, draw_scene, encode


def image_part(data: bytes, mime_type: str = "image/png") -> types.Part:
    """An inline image part, as callers build it."""
    return types.Part.from_bytes(data=data, mime_type=mime_type)


def parts(*items: types.PartUnionDict) -> list[types.PartUnionDict]:
    """A typed contents list (list literals of mixed parts infer as list[object])."""
    return list(items)


def ask(
    client: genai.Client,
    data: bytes,
    prompt: str,
    mime_type: str = "image/png",
    model: str = MODEL,
    config: types.GenerateContentConfig | None = None,
) -> types.GenerateContentResponse:
    """One generateContent call with the image first and the prompt after it."""
    return client.models.generate_content(
        model=model, contents=parts(image_part(data, mime_type), prompt), config=config
    )


def parse_json_reply(text: str) -> Any:
    """The JSON in a reply, with or without a ```json fence."""
    fenced = re.fullmatch(r"```json\n(.*)\n```", text, flags=re.DOTALL)
    return json.loads(fenced.group(1) if fenced else text)


def to_pixels(box_2d: list[int], width: int, height: int) -> tuple[float, float, float, float]:
    """[ymin, xmin, ymax, xmax] in 0-1000 -> (x1, y1, x2, y2) in pixels."""
    ymin, xmin, ymax, xmax = box_2d
    return (xmin / 1000 * width, ymin / 1000 * height, xmax / 1000 * width, ymax / 1000 * height)


def box_error(item: dict[str, Any], shape: Shape, width: int, height: int) -> float:
    """Largest distance in pixels between a detected box and the ground truth."""
    got = to_pixels(item["box_2d"], width, height)
    return max(abs(a - b) for a, b in zip(got, shape.box, strict=True))


def stats(url: str) -> dict[str, Any]:
    """The emulator-only counters (ints, plus the nested fault and quota-window objects)."""
    response = httpx.get(f"{url}/_emulator/stats")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def counter_values(counters: dict[str, Any]) -> list[int]:
    """Every number in a stats object, nested objects (faults, windows) included."""
    values: list[int] = []
    for value in counters.values():
        values.extend(counter_values(value) if isinstance(value, dict) else [value])
    return values


def reset(url: str) -> None:
    """Forget every file and counter of the emulator at ``url``."""
    httpx.post(f"{url}/_emulator/reset").raise_for_status()


def expire(url: str, name: str) -> None:
    """Make the file ``files/<id>`` expire now."""
    file_id = name.removeprefix("files/")
    httpx.post(f"{url}/_emulator/files/{file_id}:expire").raise_for_status()


def upload_bytes(
    client: genai.Client, data: bytes, mime_type: str = "image/png", **config: Any
) -> types.File:
    """``files.upload`` of in-memory bytes, as callers do it."""
    settings = types.UploadFileConfig(mime_type=mime_type, **config)
    return client.files.upload(file=io.BytesIO(data), config=settings)


def set_faults(url: str, **changes: Any) -> dict[str, Any]:
    """Reset the emulator at ``url`` (start-up faults, zero counters), then apply ``changes``."""
    reset(url)
    response = httpx.post(f"{url}/_emulator/faults", json=changes)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def blank(width: int, height: int) -> bytes:
    """A PNG of one colour, no shapes."""
    return encode(draw_scene(width, height, []))


def image_tokens(usage: types.GenerateContentResponseUsageMetadata | None) -> int | None:
    """The IMAGE entry of promptTokensDetails (None when absent)."""
    assert usage is not None
    details = {d.modality: d.token_count for d in usage.prompt_tokens_details or []}
    return details.get(types.MediaModality.IMAGE)


@contextmanager
def serving(config: EmulatorConfig) -> Iterator[str]:
    """``create_app(config)`` under uvicorn in a thread; yields its URL."""
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "emulator thread did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
