"""models/metrics_expose.py: multiprocess set-up, the import-order guard, scrape registries
and the worker's metrics port. Process-level behaviour runs in fresh interpreters: which
value store prometheus_client uses is decided at its first import."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from visionq.models import metrics
from visionq.models.metrics_expose import (
    MetricsPortInUse,
    _host,
    render,
    scrape_registry,
    serve_worker_metrics,
)

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_spawned_processes_add_up_in_one_scrape(tmp_path: Path) -> None:
    # Two spawned children (as uvicorn spawns its workers) count jobs; the parent's scrape
    # sums them: the multiprocess mode at work. Without prepare_multiprocess each child would
    # count in its own memory and the parent would see 0.
    script = tmp_path / "spawner.py"  # spawn re-imports __main__: it must be a file
    script.write_text(
        textwrap.dedent(
            """
        import multiprocessing, os
        from visionq.models.metrics_expose import prepare_multiprocess, render, scrape_registry

        def child(n):
            from visionq.models import metrics
            metrics.count_submitted(tenant="t", task="caption", model="x", tier="standard", n=n)

        if __name__ == "__main__":
            folder = prepare_multiprocess("api")
            assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
            spawn = multiprocessing.get_context("spawn")
            for n in (2, 5):
                p = spawn.Process(target=child, args=(n,))
                p.start(); p.join()
                assert p.exitcode == 0
            body, kind = render(scrape_registry())
            print(folder)
            print(body.decode())
        """
        )
    )
    done = run_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')")
    assert done.returncode == 0, done.stderr
    folder, text = done.stdout.split("\n", 1)
    assert not Path(folder).exists(), "the per-run directory is removed at exit"
    samples = {
        (s.name, s.labels.get("tenant")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("visionq_jobs_submitted_total", "t")] == 7


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_an_operator_directory_shared_by_api_and_worker_is_never_wiped(tmp_path: Path) -> None:
    # Review R5: the API (live, this test's pid) already keeps its files in the directory
    # the operator set; a worker started second gets a folder of its own and deletes
    # nothing of the API's. A folder of a process of this host that died is swept; one of
    # another host (a container sharing the volume) is left alone.
    host = _host()
    live_api = tmp_path / f"api-{host}-{os.getpid()}"
    live_api.mkdir()
    (live_api / "counter_1.db").write_bytes(b"live")
    (tmp_path / "counter_123.db").write_bytes(b"someone else's")
    dead = tmp_path / f"worker-{host}-{_dead_pid()}"
    dead.mkdir()
    (dead / "counter_2.db").write_bytes(b"old")
    elsewhere = tmp_path / f"worker-otherhost-{_dead_pid()}"
    elsewhere.mkdir()
    done = run_python(
        """
        import os
        from visionq.models.metrics_expose import prepare_multiprocess
        folder = prepare_multiprocess("worker")
        assert prepare_multiprocess("worker") == folder  # once per process
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
        print(folder, os.getpid())
        """,
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    folder, pid = done.stdout.split()
    assert folder == str(tmp_path / f"worker-{host}-{pid}")
    assert not Path(folder).exists(), "its own folder is removed at exit"
    assert (live_api / "counter_1.db").read_bytes() == b"live"
    assert (tmp_path / "counter_123.db").exists()
    assert not dead.exists() and elsewhere.exists()


def test_temporary_folders_of_dead_processes_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host()
    crashed = tmp_path / f"visionq-metrics-api-{host}-{_dead_pid()}-abc123"
    crashed.mkdir()
    live = tmp_path / f"visionq-metrics-api-{host}-{os.getpid()}-def456"
    live.mkdir()
    done = run_python(
        "from visionq.models.metrics_expose import prepare_multiprocess\n"
        "print(prepare_multiprocess('api'))",
        env={"TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == tmp_path
    assert not crashed.exists() and live.exists()


def test_an_early_import_is_an_error_naming_the_fix() -> None:
    done = run_python(
        """
        from visionq.models import metrics  # prometheus_client now in memory mode
        from visionq.models.metrics_expose import prepare_multiprocess
        prepare_multiprocess("api")
        """
    )
    assert done.returncode != 0
    assert "imported before PROMETHEUS_MULTIPROC_DIR was set" in done.stderr
    assert "after prepare_multiprocess()" in done.stderr


def test_the_cli_does_not_import_prometheus_client_before_its_commands_run() -> None:
    # `visionq api` / `visionq worker` call prepare_multiprocess first thing: a module that
    # cli/main.py imports at its top must not pull prometheus_client in.
    done = run_python(
        """
        import sys
        import visionq.cli.main
        print("prometheus_client" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_one_process_without_a_directory_scrapes_its_memory() -> None:
    before = scrape_value("visionq_file_upload_bytes_total")
    metrics.FILE_UPLOAD_BYTES.inc(10)
    assert scrape_value("visionq_file_upload_bytes_total") == before + 10
    _, kind = render(scrape_registry())
    assert kind.startswith("text/plain; version=0.0.4")


def scrape_value(name: str) -> float:
    body, _ = render(scrape_registry())
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return 0.0


def test_the_worker_port_serves_metrics_and_a_taken_port_says_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortInUse, match=f"port {port} is in use: give each worker"):
            serve_worker_metrics("127.0.0.1", port)
    serve_worker_metrics("127.0.0.1", 0)  # 0: off, nothing started
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    serve_worker_metrics("127.0.0.1", free)
    answer = httpx.get(f"http://127.0.0.1:{free}/metrics", timeout=10)
    assert answer.status_code == 200
    names = {f.name for f in text_string_to_metric_families(answer.text)}
    assert "visionq_jobs_submitted" in names


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_worker_port_wants_the_metrics_token_when_set() -> None:
    # Review R12: the worker's labels carry tenants and costs like the API's /metrics.
    port = _free_port()
    serve_worker_metrics("127.0.0.1", port, "s3cret")
    url = f"http://127.0.0.1:{port}/metrics"
    refused = httpx.get(url, timeout=10)
    assert refused.status_code == 401
    assert "VISIONQ_METRICS_TOKEN" in refused.text
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    answer = httpx.get(url, headers={"Authorization": "bearer s3cret"}, timeout=10)
    assert answer.status_code == 200
    assert "visionq_jobs_submitted" in {f.name for f in text_string_to_metric_families(answer.text)}
