"""The browser tests' one stack: Redis, SQLite, a private emulator, the API, one worker.

Session-scoped (tests/browser/conftest.py): the console is a client of the API, so the
browser talks to a real ``visionq api`` serving /console and /v1, and a real worker runs the
jobs against an emulator no other test shares, whose faults the tests change at runtime
(``ConsoleStack.set_faults``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import _create_key
from visionq.cli.stackbuild import StackBuilder

# The tenants with keys: the console signs in as the first, the second must see none of it.
TENANTS = ("console", "other")

# Fast retries so a job failing on every attempt ends in seconds (3 attempts, ~1 s apart).
SETTINGS = {
    "VISIONQ_MAX_ATTEMPTS": "3",
    "VISIONQ_RETRY_BASE_S": "0.2",
    "VISIONQ_RETRY_MAX_DELAY_S": "1",
}


@dataclass
class ConsoleStack:
    """The running stack: ``api_url`` (the console is at ``api_url/console/``), one API key
    per tenant, the emulator's URL for its runtime fault settings."""

    builder: StackBuilder
    api_url: str = ""
    emulator_url: str = ""
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def console_url(self) -> str:
        return f"{self.api_url}/console/"

    def client(self, tenant: str = TENANTS[0]) -> httpx.Client:
        """An HTTP client of ``tenant``: seeds jobs and reads the truth a page must show."""
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.keys[tenant]}"},
            timeout=30,
        )

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """POST the emulator's runtime fault settings (None clears one)."""
        answer = httpx.post(f"{self.emulator_url}/_emulator/faults", json=faults, timeout=10)
        answer.raise_for_status()
        settings: dict[str, Any] = answer.json()
        return settings

    def reset_faults(self) -> None:
        """The emulator's start-up settings again (no faults)."""
        httpx.post(f"{self.emulator_url}/_emulator/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        self.builder.stop()


def console_stack(workdir: Path) -> ConsoleStack:
    """Start the stack in ``workdir`` (logs there as ``<name>.log``); ``stop()`` it."""
    builder = StackBuilder(
        workdir,
        database_url=f"sqlite:///{workdir / 'visionq.db'}",
        extra_env={"VISIONQ_BLOB_DIR": str(workdir / "blobs"), **SETTINGS},
    )
    stack = ConsoleStack(builder=builder)
    try:
        builder.start_redis(persistent=False)
        stack.emulator_url = builder.start_own_emulator(["--fault-seed", "1"])
        builder.migrate()
        stack.keys = {tenant: _create_key(builder.env, tenant) for tenant in TENANTS}
        stack.api_url = builder.start_api(name="api")
        builder.start_worker(name="worker", concurrency=4)
    except BaseException:
        builder.stop()
        raise
    return stack
