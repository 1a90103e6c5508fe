"""The contract tests' emulator and their summary line (the counts the closing note cites)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.wire import COUNTS, REFUSALS
from tests.emulator.conftest import running_emulator
from visionq.emulator.apischema import load_schema


@pytest.fixture(scope="session")
def contract_emulator() -> Iterator[str]:
    """An emulator whose uploads are ACTIVE at once; tests may change its faults."""
    with running_emulator("--file-processing-s", "0") as url:
        yield url


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line with the counts, whenever a contract test ran."""
    if not (COUNTS["requests"] or COUNTS["responses"]):
        return
    sources = {
        load_schema(v).source + f" ({v}, {load_schema(v).generated})" for v in ("v1", "v1beta")
    }
    terminalreporter.write_line(
        f"contract: {COUNTS['requests']} requests and {COUNTS['responses']} responses"
        f" validated against the stored schema: {'; '.join(sorted(sources))}"
    )
    for refusal, count in REFUSALS.items():
        terminalreporter.write_line(
            f"contract: the emulator refused {count} call(s) visionq admits: {refusal}"
        )
