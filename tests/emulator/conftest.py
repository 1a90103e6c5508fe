"""Fixtures: real emulator processes on free ports and SDK clients pointed at them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from visionq.emulator.server import READY_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "test-key"
MODEL = "gemini-3.5-flash-lite"
# The File API emulator's inline limit is low so a file can exceed it (files don't count).
FILES_INLINE_LIMIT = 4 * 1024 * 1024
SLOW_FILES_MAX_BYTES = 100_000


@contextmanager
def running_emulator(*flags: str) -> Iterator[str]:
    """``python -m visionq.emulator --port 0 --api-key ... FLAGS``; yields the URL it prints."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "visionq.emulator", "--port", "0", "--api-key", API_KEY]
    process = subprocess.Popen(
        [*command, "--api-key", "second-key", *flags],
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
        http_options=types.HttpOptions(base_url=url, api_version=version, timeout=60_000),
    )


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """The emulator with default settings (files PROCESSING for 0.5 s)."""
    with running_emulator() as url:
        yield url


@pytest.fixture(scope="session")
def client(emulator_url: str) -> Iterator[genai.Client]:
    """An SDK client with a valid key on v1beta."""
    sdk = make_client(emulator_url)
    yield sdk
    sdk.close()


@pytest.fixture(scope="session")
def files_url() -> Iterator[str]:
    """Files are ACTIVE (or FAILED) at once; inline requests are capped at 4 MiB."""
    flags = ("--file-processing-s", "0", "--inline-limit-bytes", str(FILES_INLINE_LIMIT))
    with running_emulator(*flags) as url:
        yield url


@pytest.fixture(scope="session")
def files_client(files_url: str) -> Iterator[genai.Client]:
    """An SDK client for ``files_url``."""
    sdk = make_client(files_url)
    yield sdk
    sdk.close()


@pytest.fixture(scope="session")
def slow_files_url() -> Iterator[str]:
    """Files stay PROCESSING for an hour; files are capped at 100,000 bytes."""
    flags = ("--file-processing-s", "3600", "--file-max-bytes", str(SLOW_FILES_MAX_BYTES))
    with running_emulator(*flags) as url:
        yield url


@pytest.fixture(scope="session")
def delayed_files_url() -> Iterator[str]:
    """Files are PROCESSING for one second (tests here may reset the emulator)."""
    with running_emulator("--file-processing-s", "1") as url:
        yield url


@pytest.fixture(scope="session")
def flaky_json_url() -> Iterator[str]:
    """Every third structured answer violates its schema (tests here may reset)."""
    with running_emulator("--invalid-json-every", "3", "--file-processing-s", "0") as url:
        yield url


# Start-up fault settings of ``faults_url``: harmless on their own, and /_emulator/reset
# must bring them back after a test changes them at runtime.
FAULTS_STARTUP_FLAGS = ("--fault-seed", "11", "--retry-delay-s", "2.5", "--hang-s", "30")


@pytest.fixture(scope="session")
def faults_url() -> Iterator[str]:
    """For fault and quota tests: each test resets it, then sets its faults at runtime."""
    with running_emulator(*FAULTS_STARTUP_FLAGS) as url:
        yield url


@pytest.fixture(scope="module")
def batch_url() -> Iterator[str]:
    """An emulator for Batch API tests, one per module: short PENDING, lines unpaced, files
    ACTIVE at once."""
    flags = ("--batch-pending-s", "0.2", "--batch-lines-per-s", "0", "--file-processing-s", "0")
    with running_emulator(*flags) as url:
        yield url


@pytest.fixture(scope="module")
def batch_sdk(batch_url: str) -> Iterator[genai.Client]:
    """A real SDK client for ``batch_url``, without retries."""
    client = make_client(batch_url)
    yield client
    client.close()
