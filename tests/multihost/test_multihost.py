"""Workers on several hosts share only Redis, PostgreSQL, the object store and Gemini.

Three namespaces stand for three machines: ``api`` runs the API, ``w1`` and ``w2`` a worker
each (w2's runs the sweeper). Every task kind of the registry runs, images go by the File
API and are uploaded once for all hosts, w1 is SIGKILLed mid-run and w2's sweeper gets its
jobs done; then the exactly-once audit, and no host kept a blob or a database locally.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from tests.faults.stack import FAULT_SETTINGS, TERMINAL, FaultStack
from tests.integration.helpers import noise_png
from tests.multihost.cluster import EMULATOR_LATENCY_MS, Cluster, SharedServices, bucket_keys
from tests.multihost.netns import run_in
from visionq.models.db import make_engine
from visionq.models.tables import Attempt, AttemptOutcome, FileState, GeminiFile, utcnow
from visionq.vision.task_registry import TASKS, TaskKind

pytestmark = pytest.mark.multihost

JOBS = 112  # 16 of each of the 7 task kinds
DISTINCT_IMAGES = 4
W2_THREADS = 8
# Noise barely compresses: 200 x 200 RGB is ~120 KB, over the 64 KiB inline limit, and
# under every task's downscale size, so the bytes uploaded are the bytes submitted.
IMAGE_SIDE = 200
# Fields each kind needs besides its images (vision/task_registry.py: prompt_needs,
# takes_labels; compare takes two images).
FIELDS: dict[str, dict[str, str]] = {
    "ask": {"prompt": "What is in the picture?"},
    "classify": {"labels": "noise,photo"},
    "custom": {"prompt": "List the colours you see."},
}
REPORT_VARIABLE = "VISIONQ_MULTIHOST_REPORT"
# The API's access log line (api/accesslog.py): ... "METHOD /path" STATUS ...
ACCESS_STATUS = re.compile(r'visionq\.access \S+ "[A-Z]+ [^"]*" (\d{3}) ')


def test_each_host_reaches_the_shared_services_and_not_the_root_loopback(
    cluster: Cluster, shared: SharedServices
) -> None:
    """From inside each host: Redis, PostgreSQL, moto and the emulator answer at the
    services' address; the root namespace's loopback (where a test's own services would
    listen) does not, and the host has its own hostname."""
    ports = {
        "redis": shared.redis.port, "postgres": shared.postgres.port,
        "moto": shared.moto_port, "emulator": shared.emulator_port,
    }  # fmt: skip
    probes = {name: (cluster.services_address, port) for name, port in ports.items()}
    probes["loopback-redis"] = ("127.0.0.1", shared.redis.port)
    script = (
        "import json, socket, sys\n"
        "out = {}\n"
        "for name, (host, port) in json.loads(sys.argv[1]).items():\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close(); out[name] = True\n"
        "    except OSError:\n"
        "        out[name] = False\n"
        "print(socket.gethostname(), json.dumps(out))\n"
    )
    for host in cluster.hosts.values():
        out = cluster.workdir / f"probe-{host.name}.txt"
        argv = ["python3", "-c", script, json.dumps(probes)]
        assert run_in(host, argv, os.environ, log=out).wait(30) == 0, out.read_text()
        hostname, reached = out.read_text().split(" ", 1)
        assert hostname == f"vq-{host.name}" != socket.gethostname()
        assert json.loads(reached) == {**dict.fromkeys(ports, True), "loopback-redis": False}


def _form(index: int, images: list[bytes]) -> tuple[dict[str, str], list[Any]]:
    kind = list(TaskKind)[index % len(TaskKind)].value
    spec = TASKS[TaskKind(kind)]
    first = images[index % len(images)]
    chosen = [first, images[(index + 1) % len(images)]] if spec.min_images > 1 else [first]
    data = {"task": kind, "options": json.dumps({"cache": False}), **FIELDS.get(kind, {})}
    files = [("image", (f"img{n}.png", blob, "image/png")) for n, blob in enumerate(chosen)]
    return data, files


def test_jobs_run_across_hosts_with_nothing_kept_locally(
    cluster: Cluster, shared: SharedServices
) -> None:
    started = time.monotonic()
    cluster.run("api", "db", "upgrade")  # as the Kubernetes migration Job does
    key = cluster.run("api", "keys", "create", "multihost", "--tenant", "acme")
    api_url = cluster.start_api()
    cluster.start_worker("w1", concurrency=8, sweeper=False)
    cluster.start_worker("w2", concurrency=W2_THREADS, sweeper=True)
    uploads_before = int(cluster.emulator_stats()["uploads_completed"])

    database_url = f"postgresql://postgres@127.0.0.1:{shared.postgres.port}/visionq"
    witness = FaultStack(workdir=cluster.workdir, database_url=database_url)
    witness.engine = make_engine(database_url, pool_size=2)
    images = [noise_png(seed, IMAGE_SIDE) for seed in range(DISTINCT_IMAGES)]
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=api_url, headers=headers, timeout=60) as client:

            def post(index: int) -> httpx.Response:
                data, files = _form(index, images)
                return client.post("/v1/jobs", data=data, files=files)

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(post, range(JOBS)))
            assert [a.status_code for a in answers] == [202] * JOBS, [
                a.text for a in answers if a.status_code != 202
            ][:3]
            ids = [a.json()["id"] for a in answers]

            # SIGKILL w1 (its whole process group, as a lost machine) while it demonstrably
            # has a Gemini call in flight: see _kill_w1_with_a_call_in_flight.
            witness.wait_for(lambda _: len(cluster.jobs_ended("w1")) >= 8, 60, "w1 ran jobs")
            witness.wait_for(lambda _: _all_uploaded(witness), 60, "every image uploaded")
            killed_in_flight = _kill_w1_with_a_call_in_flight(cluster, witness)
            witness.wait_for(
                lambda counts: sum(counts.get(s, 0) for s in TERMINAL) >= JOBS,
                _deadline_s(),
                "all ended",
            )
            jobs = [client.get(f"/v1/jobs/{job_id}") for job_id in ids]
            mask_jobs = [j.json() for j in jobs if j.json()["task"] == "segment"]
            served = [client.get(f"/v1/jobs/{job['id']}/images/0") for job in mask_jobs[:3]]
            served += [
                client.get(f"/v1/jobs/{job['id']}/masks/0.png")
                for job in mask_jobs
                if job["status"] == "succeeded" and job["result"].get("objects")
            ][:3]
        audit = witness.audit()
        audit.check_exactly_once()
        files = _files(witness)
    finally:
        assert witness.engine is not None
        witness.engine.dispose()

    # Every 202 ended, every job succeeded, the API answered every read with 200.
    assert audit.by_status() == {"succeeded": JOBS}, audit.figures()
    assert [j.status_code for j in jobs + served] == [200] * (len(jobs) + len(served))
    statuses = ACCESS_STATUS.findall(cluster.log("api").read_text(errors="replace"))
    assert statuses and not [code for code in statuses if code.startswith("5")]
    # Both hosts ran jobs. The jobs w1 had in flight when killed (their attempt recorded
    # "lost" when taken over) were ended by w2, whose sweeper (on another host than the
    # dead worker) sent them again once their lease lapsed.
    on_w1, on_w2 = cluster.jobs_ended("w1"), cluster.jobs_ended("w2")
    assert on_w1 and on_w2
    assert set(on_w1) | set(on_w2) == set(ids)
    in_flight = {a["job_id"] for a in audit.attempts if a["outcome"] == "lost"}
    assert killed_in_flight <= in_flight <= set(on_w2), (killed_in_flight, in_flight, on_w2)
    assert "sweeper sent" in cluster.log("w2").read_text(errors="replace")
    # File API: each distinct image was uploaded once, by whichever host's job needed it
    # first, and reused by every other job on either host; the emulator is the witness.
    # `uploaded` counts every upload and `held` the distinct hashes, so they agree only
    # because two hosts never upload the same image at once: the right to upload is a
    # database claim exactly one worker wins (models/files.py::claim_upload, an insert
    # guarded by the gemini_files (identity, sha256) unique key, or a conditional update
    # of a stale claim). w1 is killed only once every image is ACTIVE (_all_uploaded), so
    # no upload of a dead worker is taken over and done twice.
    uploaded = int(cluster.emulator_stats()["uploads_completed"]) - uploads_before
    held = {base64.b64decode(f["sha256Hash"]).decode() for f in cluster.emulator_files()}
    assert uploaded == len(held) < JOBS, files
    assert {hashlib.sha256(image).hexdigest() for image in images} <= held
    assert {i["transport"] for j in jobs for i in j.json()["inputs"]} == {"file"}
    # Blobs live in the bucket only: no host kept a blob, a database or a temporary file.
    keys = bucket_keys(f"http://127.0.0.1:{shared.moto_port}")
    assert len([k for k in keys if "/blobs/" in f"/{k}"]) >= DISTINCT_IMAGES
    left = {host: cluster.leftovers(host) for host in cluster.hosts}
    assert left == {host: [] for host in cluster.hosts}
    _report(cluster, on_w1, on_w2, in_flight, uploaded, files, audit.figures(), started)


def _deadline_s() -> float:
    """How long all jobs may take after the kill, from the settings the hosts run with
    (FAULT_SETTINGS): jobs w1 had taken but not claimed are sent again once QUEUED for
    VISIONQ_REQUEUE_AFTER_S, the ones it ran once their lease lapsed (VISIONQ_LEASE_S) at
    the next sweep (VISIONQ_SWEEP_INTERVAL_S); then w2's 8 threads run what is left, each
    job an emulator call plus some CPU. Three times that, plus start-up slack, for a
    loaded 2-core CI machine (a bound for a hang, not a timing assert)."""
    recovery = sum(
        float(FAULT_SETTINGS[f"VISIONQ_{name}"])
        for name in ("REQUEUE_AFTER_S", "LEASE_S", "SWEEP_INTERVAL_S")
    )
    work = JOBS * (EMULATOR_LATENCY_MS / 1000 + 0.25) / W2_THREADS
    return 3 * (recovery + work) + 30


def _all_uploaded(witness: FaultStack) -> bool:
    """Every distinct image has its File API upload recorded ACTIVE (none in progress)."""
    assert witness.engine is not None
    query = select(func.count()).where(GeminiFile.state == FileState.ACTIVE)
    with witness.engine.connect() as connection:
        return int(connection.execute(query).scalar_one()) >= DISTINCT_IMAGES


def _kill_w1_with_a_call_in_flight(cluster: Cluster, witness: FaultStack) -> set[str]:
    """SIGKILL w1 once the database shows an attempt (a Gemini call) of w1's in flight;
    returns those attempts' job ids. Attempts record no host, so w2 is frozen (SIGSTOP)
    for the moment it takes: an attempt opened after the freeze and still running can
    only be w1's. The freeze is far shorter than a lease, and w2 is resumed at once."""
    assert witness.engine is not None
    w1, w2 = cluster.processes["w1"].popen, cluster.processes["w2"].popen
    os.killpg(w2.pid, signal.SIGSTOP)
    try:
        frozen_at = utcnow()
        query = select(Attempt.job_id).where(
            Attempt.outcome == AttemptOutcome.RUNNING, Attempt.started_at > frozen_at
        )
        deadline = time.monotonic() + 30
        while True:
            with witness.engine.connect() as connection:
                on_w1 = set(connection.scalars(query))
            if on_w1:
                break
            assert time.monotonic() < deadline, "w1 opened no attempt while w2 was frozen"
            time.sleep(0.01)
        os.killpg(w1.pid, signal.SIGKILL)
    finally:
        os.killpg(w2.pid, signal.SIGCONT)
    w1.wait(10)
    # The emulator answers after EMULATOR_LATENCY_MS: a call seen running moments ago
    # cannot have ended before the kill; its attempt is still open, a dead worker's.
    return on_w1


def _files(witness: FaultStack) -> list[dict[str, Any]]:
    assert witness.engine is not None
    with witness.engine.connect() as connection:
        rows = connection.execute(text("SELECT sha256, state, uploads FROM gemini_files"))
        return [dict(row._mapping) for row in rows]


def _report(
    cluster: Cluster,
    on_w1: dict[str, str],
    on_w2: dict[str, str],
    in_flight: set[str],
    uploaded: int,
    files: list[dict[str, Any]],
    figures: dict[str, Any],
    started: float,
) -> None:
    roles = {"api": "API", "w1": "worker (SIGKILLed mid-run)", "w2": "worker + sweeper"}
    lines = ["MULTIHOST SUMMARY", "host  ip           role"]
    lines += [f"{h.name:<5} {h.ip:<12} {roles[h.name]}" for h in cluster.hosts.values()]
    lines += [
        f"jobs ended per worker host: w1={len(on_w1)} w2={len(on_w2)} "
        f"(w1's {len(in_flight)} in flight at the kill all ended on w2)",
        f"File API: {uploaded} uploads for {figures['jobs']} jobs; gemini_files rows "
        f"{[(f['sha256'][:8], f['uploads']) for f in files]}",
        f"outcomes: {figures['statuses']}; attempts {figures['attempt_outcomes']}",
        f"seconds: {time.monotonic() - started:.1f}",
    ]
    summary = "\n".join(lines)
    print(f"\n{summary}")
    if target := os.environ.get(REPORT_VARIABLE):
        with open(target, "a", encoding="utf-8") as out:
            out.write(summary + "\n")
