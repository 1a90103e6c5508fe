"""The raw ceiling: the same generateContent calls the worker makes, sent straight to the
emulator through the google-genai SDK from a thread pool; no API, queue or database.

Runs in its own process (`python -m bench.perf.raw ...`, JSON on stdout), so its CPU time
is its own; `run_raw` starts it and reads the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from visionq.vision.catalogue import load_catalogue
from visionq.vision.generation import generation_config
from visionq.vision.tasks import JobOptions, TaskKind, build_prompt

# The catalogue's default model: what the benchmark's jobs use.
MODEL = load_catalogue().defaults["model"]


def _caption_request() -> tuple[str, dict[str, Any]]:
    """The prompt text and generation config the worker sends for a caption job."""
    options = JobOptions(cache=False)
    text = build_prompt(TaskKind.CAPTION, prompt=None, labels=None, options=options)
    entry = load_catalogue().entry(MODEL)
    return text, generation_config(TaskKind.CAPTION, options, entry=entry)


def _client(base_url: str, api_key: str) -> genai.Client:
    options = types.HttpOptions(base_url=base_url, api_version="v1beta", timeout=120_000)
    return genai.Client(api_key=api_key, http_options=options)


def _requests(images: list[tuple[bytes, str]]) -> Callable[[int], dict[str, Any]]:
    """The generate_content arguments of call ``index`` (image ``index % len(images)``)."""
    text, config = _caption_request()

    def request(index: int) -> dict[str, Any]:
        data, mime_type = images[index % len(images)]
        parts = [
            types.Part.from_bytes(data=data, mime_type=mime_type),
            types.Part.from_text(text=text),
        ]
        return {
            "model": MODEL,
            "contents": [types.Content(role="user", parts=parts)],
            "config": types.GenerateContentConfig(**config) if config else None,
        }

    return request


def _failure(exc: Exception) -> str:
    # Counted, not fatal: the report shows them.
    return f"{type(exc).__name__}: {exc}"


def _outcome(response: types.GenerateContentResponse) -> str | None:
    return None if (response.text or "").strip() else "empty answer"


def _result(
    jobs: int, concurrency: int, wall: float, cpu: float, errors: list[str]
) -> dict[str, Any]:
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "jobs_per_s": round(jobs / wall, 2),
        "cpu_ms_per_job": round(cpu * 1000 / jobs, 3),
        "errors": len(errors),
        "error_examples": errors[:3],
    }


def measure(
    base_url: str, api_key: str, images: list[tuple[bytes, str]], *, jobs: int, concurrency: int
) -> dict[str, Any]:
    """Send ``jobs`` calls (image ``i % len(images)``) from ``concurrency`` threads."""
    request = _requests(images)
    cpu0 = time.process_time()
    client = _client(base_url, api_key)

    def call(index: int) -> str | None:
        try:
            response = client.models.generate_content(**request(index))
        except Exception as exc:
            return _failure(exc)
        return _outcome(response)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        errors = [error for error in pool.map(call, range(jobs)) if error]
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    client.close()
    return _result(jobs, concurrency, wall, cpu, errors)


def measure_aio(
    base_url: str, api_key: str, images: list[tuple[bytes, str]], *, jobs: int, concurrency: int
) -> dict[str, Any]:
    """The same calls through the SDK's asyncio client (``client.aio``), at most
    ``concurrency`` at a time on one event loop: what an asyncio client inside the task
    would spend per call."""
    request = _requests(images)
    cpu0 = time.process_time()
    client = _client(base_url, api_key)

    async def run_all() -> tuple[list[str], float]:
        slots = asyncio.Semaphore(concurrency)

        async def call(index: int) -> str | None:
            async with slots:
                try:
                    response = await client.aio.models.generate_content(**request(index))
                except Exception as exc:
                    return _failure(exc)
                return _outcome(response)

        started = time.perf_counter()
        outcomes = await asyncio.gather(*(call(index) for index in range(jobs)))
        wall = time.perf_counter() - started
        await client.aio.aclose()
        return [error for error in outcomes if error], wall

    errors, wall = asyncio.run(run_all())
    cpu = time.process_time() - cpu0
    client.close()
    return _result(jobs, concurrency, wall, cpu, errors)


def run_raw(
    base_url: str, api_key: str, manifest: list[tuple[str, str]], *, jobs: int, concurrency: int
) -> dict[str, Any]:
    """Run ``measure`` in a fresh Python process; its JSON answer."""
    args = [
        sys.executable,
        "-m",
        "bench.perf.raw",
        "--base-url",
        base_url,
        "--api-key",
        api_key,
        "--jobs",
        str(jobs),
        "--concurrency",
        str(concurrency),
        "--images",
        json.dumps(manifest),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"raw ceiling run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--images", required=True, help="JSON list of [path, mime type]")
    args = parser.parse_args()
    images = [(Path(path).read_bytes(), mime) for path, mime in json.loads(args.images)]
    result = measure(
        args.base_url, args.api_key, images, jobs=args.jobs, concurrency=args.concurrency
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
