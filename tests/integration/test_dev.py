"""`visionq dev` and `visionq demo` as a new user runs them: real processes, real signals."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.services import visionq_command
from visionq.cli.samples import PHOTO_LABELS, PHOTOS
from visionq.client import VisionqClient
from visionq.emulator.shapes import Shape, draw_scene, encode

pytestmark = pytest.mark.integration


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def user_env(data_dir: Path) -> dict[str, str]:
    """A shell with no Gemini key and no visionq settings but the data directory."""
    keys = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONQ_") and k not in keys}
    env["VISIONQ_DATA_DIR"] = str(data_dir)
    return env


class DevProcess:
    """`visionq dev` in the background, its output collected line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(visionq_command("dev", *args), env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: signal.Signals) -> int:
        """Send `sig`, wait for the exit, then close the pipe once everything is read."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        finally:
            self._reader.join(10)
            assert self.proc.stdout is not None
            self.proc.stdout.close()

    def wait_ready(self, timeout: float = 120) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C to stop." not in self.output:
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.1)
        url = re.search(r"VISIONQ_URL=(\S+)", self.output)
        key = re.search(r"VISIONQ_API_KEY=(\S+)", self.output)
        assert url and key, self.output
        return url.group(1), key.group(1)


def processes_of(data_dir: Path, redis_ports: list[int] | None = None) -> set[int]:
    """Every live process started for this data directory.

    Found by its environment; Redis overwrites its environment with its process title
    (`redis-server 127.0.0.1:PORT`), so it is found by that title.
    """
    marker = f"VISIONQ_DATA_DIR={data_dir}".encode()
    titles = [f"127.0.0.1:{port}".encode() for port in redis_ports or []]
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        titled = b"redis-server" in cmdline and any(title in cmdline for title in titles)
        if (marker in environ.split(b"\0") or titled) and state != "Z":
            found.add(int(entry.name))
    return found


def ports_in(output: str) -> list[int]:
    return [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", output)]


def redis_ports_in(output: str) -> list[int]:
    return [int(port) for port in re.findall(r"redis://127\.0\.0\.1:(\d+)", output)]


def revoked_keys(data_dir: Path) -> list[tuple[str, bool]]:
    """(name, revoked) of the keys in the SQLite database of ``data_dir``, by name."""
    with sqlite3.connect(data_dir / "visionq.db") as db:
        rows = db.execute("SELECT name, revoked_at IS NOT NULL FROM api_keys").fetchall()
    return sorted((name, bool(revoked)) for name, revoked in rows)


def test_two_dev_stacks_side_by_side_then_clean_stop(tmp_path: Path) -> None:
    user_database = tmp_path / "user.db"
    env = {**user_env(tmp_path / "data"), "VISIONQ_DATABASE_URL": f"sqlite:///{user_database}"}
    # Its own data directory (dev/ in VISIONQ_DATA_DIR), never the configured database.
    data_dir = tmp_path / "data" / "dev"
    first = DevProcess(env)
    second = DevProcess(env)
    try:
        url1, key1 = first.wait_ready()
        url2, key2 = second.wait_ready()
        assert url1 != url2
        assert "EMULATOR" in first.output and "synthetic" in first.output
        # A key made by the command dev prints works on both, even from the user's shell,
        # whose VISIONQ_DATABASE_URL names another database.
        hint = re.search(r"More keys for this stack: (.+) visionq keys create NAME", first.output)
        assert hint, first.output
        assignments = dict(item.split("=", 1) for item in shlex.split(hint.group(1)))
        assert assignments["VISIONQ_DATA_DIR"] == str(data_dir)
        dev_env = {**env, **assignments}
        made = subprocess.run(visionq_command("keys", "create", "cli-user"), env=dev_env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        cli_key = made.stdout.strip().splitlines()[-1]
        shapes = [Shape("rectangle", "green", (30, 40, 230, 140))]
        image = encode(draw_scene(300, 200, shapes), "PNG")
        for url, key in ((url1, key1), (url2, key2), (url1, cli_key)):
            with VisionqClient(url, key) as client:
                job = client.wait([client.submit([image], task="detect").id], timeout=60)
                [done] = job.values()
                assert done.status == "succeeded"
                assert done.result is not None
                assert done.result["objects"][0]["box"] == [30, 40, 230, 140]
        redis_ports = redis_ports_in(first.output + second.output)
        assert len(redis_ports) == 2
        # The children run in the stack's data directory, `visionq dev` in the user's.
        pids = processes_of(data_dir, redis_ports) | processes_of(tmp_path / "data")
        assert len(pids) >= 10  # 2 x (dev, redis, emulator, api, worker)
    finally:
        first_rc = first.stop(signal.SIGTERM)
        second_rc = second.stop(signal.SIGINT)  # what Ctrl-C sends
    assert first_rc == 0, first.output
    assert second_rc == 0, second.output
    assert "stopped" in first.output and "stopped" in second.output
    deadline = time.monotonic() + 10
    while processes_of(data_dir, redis_ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(data_dir, redis_ports) == set()
    for port in ports_in(first.output) + ports_in(second.output):
        assert port_is_free(port), port
    # Each stack revoked the key it made; the user's own key stays.
    keys = revoked_keys(data_dir)
    assert ("cli-user", False) in keys
    assert sorted(revoked for name, revoked in keys if name.startswith("dev-")) == [True, True]
    assert not user_database.exists()


def test_dev_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(visionq_command("dev", "--port", str(port)), env=user_env(tmp_path),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert f"port {port} is in use" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert processes_of(tmp_path / "dev") == set()


def test_demo_runs_every_task_and_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    user_database = tmp_path / "user.db"
    env = {**user_env(tmp_path / "data"), "VISIONQ_DATABASE_URL": f"sqlite:///{user_database}"}
    done = subprocess.run(visionq_command("demo", "--out", str(out)), env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "synthetic" in done.stdout.lower()
    # Its data lived in a temporary folder, now removed; the user's database is untouched.
    found = re.search(r"^data\s+(\S+)", done.stdout, flags=re.MULTILINE)
    assert found, done.stdout
    demo_data = Path(found.group(1))
    assert not demo_data.exists() and not user_database.exists()
    assert not (tmp_path / "data").exists()
    records = json.loads((out / "results.json").read_text())
    images = {record["image"] for record in records}
    assert {
        "shapes-1.png",
        "shapes-2.png",
        "shapes-3.jpg",
        "chelsea.png",
        "astronaut.png",
    } <= images
    assert {record["task"] for record in records} == {"caption", "classify", "ask", "detect"}
    assert all(record["status"] == "succeeded" for record in records)
    detect = next(r for r in records if r["image"] == "shapes-2.png" and r["task"] == "detect")
    boxes = {obj["label"]: obj["box"] for obj in detect["result"]["objects"]}
    assert boxes == {"blue ellipse": [60, 80, 260, 260], "red rectangle": [340, 120, 580, 300]}
    for image in images:
        assert (out / f"{Path(image).stem}.detect.png").is_file()
        assert (out / "inputs" / image).is_file()
    # The photographs are classified by what the emulator measures, not all the same.
    photo_classes = {
        record["image"]: record["result"]["label"]
        for record in records
        if record["task"] == "classify" and record["image"] in PHOTOS
    }
    assert set(photo_classes.values()) <= set(PHOTO_LABELS), photo_classes
    assert len(set(photo_classes.values())) > 1, photo_classes
    assert processes_of(demo_data) == set()
