"""Shared services in the root namespace and visionq processes on namespace hosts.

Nothing but these services is shared: each host has its own VISIONQ_DATA_DIR and TMPDIR
(``<workdir>/<host>/data`` and ``/tmp``), its own loopback (every worker serves its metrics
on 127.0.0.1:9101 of its host, the same port on both) and its own hostname.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.faults.stack import FAULT_SETTINGS, GEMINI_KEY
from tests.multihost.netns import Host, command_in, free_indexes, make_host, remove_host
from tests.objectstore.servers import MotoServer, make_bucket, s3_settings_env, start_moto
from tests.services import PostgresServer, Process, RedisServer, free_port, visionq_command
from visionq.cli.processes import http_ok, wait_until
from visionq.cli.stackbuild import GEMINI_KEY_VARIABLES, worker_ready

BUCKET = "visionq-multihost"
HOSTS_LOCK = "/tmp/visionq-multihost.lock"
API_PORT = 8000
WORKER_METRICS_PORT = 9101
# Added per model call, so jobs are in flight when a worker is killed.
EMULATOR_LATENCY_MS = 400
# Images over this go to Gemini through the File API (uploaded once, then reused).
INLINE_LIMIT_BYTES = 64 * 1024
# A worker's one line per job (worker/tasks.py): "job <id> <outcome> in <s> s".
JOB_LINE = re.compile(r"\bjob ([0-9a-zA-Z_-]+) (\w+) in [0-9.]+ s")


@dataclass
class SharedServices:
    """What every host reaches through its gateway: (name, port) of each service."""

    workdir: Path
    postgres: PostgresServer
    redis: RedisServer
    moto: MotoServer
    emulator: Process
    emulator_port: int

    @property
    def moto_port(self) -> int:
        return self.moto.port

    @property
    def emulator_url(self) -> str:
        """The emulator from the root namespace (the test's witness)."""
        return f"http://127.0.0.1:{self.emulator_port}"

    def urls_for(self, address: str) -> dict[str, str]:
        """The settings naming the shared services at ``address`` (the same on every host:
        the File API reuse is keyed on VISIONQ_GEMINI_BASE_URL and the key, worker/gemini.py
        gemini_identity, so hosts spelling the endpoint differently would each upload)."""
        return {
            "VISIONQ_DATABASE_URL": f"postgresql://postgres@{address}:{self.postgres.port}/visionq",
            "VISIONQ_REDIS_URL": f"redis://{address}:{self.redis.port}/0",
            "VISIONQ_GEMINI_BASE_URL": f"http://{address}:{self.emulator_port}",
            **s3_settings_env(f"http://{address}:{self.moto_port}", BUCKET, "blobs"),
        }

    def stop(self) -> None:
        self.emulator.stop()
        self.moto.stop()
        self.redis.stop()
        self.postgres.remove()


def start_shared(workdir: Path) -> SharedServices:
    """PostgreSQL, Redis, moto and the emulator on 0.0.0.0 in the root namespace."""
    postgres = PostgresServer(listen="0.0.0.0")
    started: list[Any] = []
    try:
        postgres.create()
        started.append(postgres)
        redis = RedisServer(workdir / "redis", persistent=True, bind="0.0.0.0")
        redis.start()
        started.append(redis)
        moto = start_moto("0.0.0.0")
        started.append(moto)
        make_bucket(moto.endpoint_url, BUCKET)
        port = free_port()
        emulator = Process(
            "emulator",
            visionq_command(
                "emulator", "--host", "0.0.0.0", "--port", str(port),
                "--latency-ms", str(EMULATOR_LATENCY_MS),
            ),
            log=workdir / "emulator.log",
            env=_clean_environment(),
        )  # fmt: skip
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
            timeout=30,
            what="emulator",
            log=emulator.log,
        )
    except BaseException:
        for service in reversed(started):
            service.remove() if isinstance(service, PostgresServer) else service.stop()
        raise
    return SharedServices(workdir, postgres, redis, moto, emulator, port)


def _clean_environment() -> dict[str, str]:
    """This process's environment without Gemini keys or visionq settings of the caller."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in GEMINI_KEY_VARIABLES and not name.startswith("VISIONQ_")
    }


@dataclass
class Cluster:
    """Hosts (namespaces) and the visionq processes on them."""

    shared: SharedServices
    workdir: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)

    def make_hosts(self, *names: str) -> None:
        # Picking free subnets and taking them is one step for concurrent runs on a machine.
        with open(HOSTS_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for name, index in zip(names, free_indexes(len(names)), strict=True):
                self.hosts[name] = make_host(name, index)

    @property
    def services_address(self) -> str:
        """Where every host reaches the shared services: an address of the root namespace
        (the first host's gateway; the others reach it through their default route)."""
        return next(iter(self.hosts.values())).gateway

    def data_dir(self, host: str) -> Path:
        return self.workdir / host / "data"

    def tmp_dir(self, host: str) -> Path:
        return self.workdir / host / "tmp"

    def env(self, host: str, **settings: str) -> dict[str, str]:
        """A process's environment on ``host``: the shared services at its gateway, its own
        data and temporary directories, the fault tests' short timings."""
        for folder in (self.data_dir(host), self.tmp_dir(host)):
            folder.mkdir(parents=True, exist_ok=True)
        return {
            **_clean_environment(),
            **FAULT_SETTINGS,
            **self.shared.urls_for(self.services_address),
            "GEMINI_API_KEY": GEMINI_KEY,
            "VISIONQ_DATA_DIR": str(self.data_dir(host)),
            "TMPDIR": str(self.tmp_dir(host)),
            "VISIONQ_INLINE_LIMIT_BYTES": str(INLINE_LIMIT_BYTES),
            "VISIONQ_WORKER_METRICS_HOST": "127.0.0.1",
            "VISIONQ_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT),
            **{f"VISIONQ_{name.upper()}": value for name, value in settings.items()},
        }

    def run(self, host: str, *args: str) -> str:
        """A `visionq` command on ``host`` to its end; its last line of output."""
        done = subprocess.run(
            command_in(self.hosts[host], visionq_command(*args)),
            env=self.env(host),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"visionq {' '.join(args)} on {host}:\n{done.stderr[-2000:]}"
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def start(self, name: str, host: str, args: list[str], **settings: str) -> Process:
        log = self.workdir / f"{name}.log"
        argv = command_in(self.hosts[host], visionq_command(*args))
        process = Process(name, argv, log=log, env=self.env(host, **settings))
        self.processes[name] = process
        return process

    def start_api(self, host: str = "api") -> str:
        """`visionq api` on ``host`` (all its interfaces); its URL from the root namespace."""
        self.start("api", host, ["api", "--host", "0.0.0.0", "--port", str(API_PORT)])
        url = f"http://{self.hosts[host].ip}:{API_PORT}"
        wait_until(lambda: http_ok(f"{url}/healthz"), timeout=60, what="api", log=self.log("api"))
        return url

    def start_worker(self, host: str, *, concurrency: int, sweeper: bool) -> Process:
        """`visionq worker` on ``host``, the sweeper's thread on or off; once ready."""
        ready = worker_ready(self.log(host))
        args = ["worker", "--concurrency", str(concurrency)]
        process = self.start(host, host, args, sweeper_enabled=str(sweeper).lower())
        wait_until(ready, timeout=60, what=f"worker on {host}", log=self.log(host))
        return process

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def jobs_ended(self, name: str) -> dict[str, str]:
        """{job id: outcome} of the jobs the process ``name`` logged as ended."""
        text = self.log(name).read_text(errors="replace") if self.log(name).exists() else ""
        return {match[1]: match[2] for match in JOB_LINE.finditer(text)}

    def leftovers(self, host: str) -> list[str]:
        """Files under the host's data and temporary directories, except the metrics
        folders prometheus-client keeps per process (a cache that may be lost)."""
        found = []
        for root in (self.data_dir(host), self.tmp_dir(host)):
            for path in _files(root):
                relative = path.relative_to(self.workdir / host)
                if not relative.parts[1].startswith("visionq-metrics-"):
                    found.append(str(relative))
        return found

    def emulator_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.shared.emulator_url}/_emulator/stats").json()
        return stats

    def emulator_files(self) -> list[dict[str, Any]]:
        """Every file the emulator holds (its own File API list, all pages)."""
        found: list[dict[str, Any]] = []
        token = ""
        with httpx.Client(base_url=self.shared.emulator_url, timeout=30) as client:
            while True:
                params = {"pageSize": "100"} | ({"pageToken": token} if token else {})
                page = client.get(
                    "/v1beta/files", params=params, headers={"x-goog-api-key": GEMINI_KEY}
                )
                page.raise_for_status()
                found.extend(page.json().get("files", []))
                token = page.json().get("nextPageToken", "")
                if not token:
                    return found

    def stop(self) -> None:
        """Stop every process, then remove the hosts; never raises before all are done."""
        for process in reversed(list(self.processes.values())):
            process.stop()
        for host in self.hosts.values():
            remove_host(host)


def _files(root: Path) -> Iterator[Path]:
    return (path for path in root.rglob("*") if path.is_file()) if root.exists() else iter(())


def bucket_keys(endpoint: str) -> list[str]:
    """Every key of the shared bucket (s3fs, as the processes use it)."""
    s3fs = importlib.import_module("s3fs")  # untyped; an optional extra
    options = json.loads(s3_settings_env(endpoint, BUCKET, "blobs")["VISIONQ_BLOB_STORAGE_OPTIONS"])
    fs = s3fs.S3FileSystem(**options, use_listings_cache=False)
    return [str(key) for key in fs.find(BUCKET)]
