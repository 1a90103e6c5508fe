"""Fault-injection tests: marked ``faults``; each builds and tears down its own stack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.stack import FaultStack
from tests.services import postgres_bindir, postgres_server

pytestmark = pytest.mark.faults


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., FaultStack]]:
    """Build a stack on SQLite (or the given database URL); stopped after the test."""
    built: list[FaultStack] = []

    def make(database_url: str | None = None, **kwargs: object) -> FaultStack:
        url = database_url or f"sqlite:///{tmp_path / 'visionq.db'}"
        stack = FaultStack(workdir=tmp_path / f"stack{len(built)}", database_url=url)
        built.append(stack)
        stack.start(**kwargs)  # type: ignore[arg-type]
        return stack

    yield make
    for stack in built:
        stack.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """For a test that runs on both databases: None (the stack's SQLite file) or a
    throwaway PostgreSQL's URL, to pass to ``make_stack``."""
    if request.param == "sqlite":
        yield None
        return
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with postgres_server() as url:
        yield url


def report(name: str, figures: dict[str, object]) -> None:
    """Print a test's figures (shown with -s; collected for the closing note)."""
    print(f"\nFAULT FIGURES {name}: {figures}")
