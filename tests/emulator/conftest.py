"""Fixtures: a real emulator process on a free port and SDK clients pointed at it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from emulator.server import READY_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "test-key"
MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """Start ``python -m emulator --port 0`` and read the URL it prints."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--api-key",
            "second-key",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith(READY_PREFIX), f"unexpected first line: {line!r}"
        yield line.removeprefix(READY_PREFIX)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def make_client(url: str, api_key: str = API_KEY, version: str = "v1beta") -> genai.Client:
    """A real SDK client for the emulator, with a timeout and no retries."""
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(base_url=url, api_version=version, timeout=30_000),
    )


@pytest.fixture(scope="session")
def client(emulator_url: str) -> Iterator[genai.Client]:
    """An SDK client with a valid key on v1beta."""
    sdk = make_client(emulator_url)
    yield sdk
    sdk.close()
