"""The multi-host test: hosts are network namespaces (tests/multihost/netns.py).

Skip rule: without root and `ip netns` every test here skips, unless VISIONQ_REQUIRE_NETNS=1
(CI, .ci/run), which turns the skip into a failure. The shared services (PostgreSQL,
Redis, the S3 stand-in, the Gemini emulator) run once per module in the root namespace,
listening on every interface; the hosts reach them through their gateway address.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multihost.cluster import Cluster, SharedServices, start_shared
from tests.multihost.netns import netns_available, remove_stale
from tests.services import postgres_bindir

pytestmark = pytest.mark.multihost

# Set by .ci/run: a machine without network namespaces fails these tests instead of skipping.
REQUIRE_VARIABLE = "VISIONQ_REQUIRE_NETNS"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason}; {REQUIRE_VARIABLE}=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServices]:
    """PostgreSQL, Redis, moto (S3) and the emulator in the root namespace, on 0.0.0.0."""
    if not netns_available():
        _unavailable("network namespaces need root and `ip netns add` (iproute2)")
    if postgres_bindir() is None:
        _unavailable("PostgreSQL server binaries not installed (hosts cannot share SQLite)")
    if not all(importlib.util.find_spec(name) for name in ("moto", "s3fs", "boto3")):
        _unavailable('moto[server] and s3fs are not installed: pip install -e ".[dev]"')
    remove_stale()
    services = start_shared(tmp_path_factory.mktemp("multihost-shared"))
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
def cluster(shared: SharedServices, tmp_path: Path) -> Iterator[Cluster]:
    """Hosts ``api``, ``w1`` and ``w2`` (namespaces, removed afterwards even on failure)."""
    built = Cluster(shared, tmp_path)
    try:
        built.make_hosts("api", "w1", "w2")
        yield built
    finally:
        built.stop()
