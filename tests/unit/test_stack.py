"""The dev/demo stack revokes the API key it made when it stops."""

from __future__ import annotations

from pathlib import Path

from cli.stack import Stack, _new_key
from models.db import make_engine, make_session_factory
from models.keys import list_keys
from models.migrate import upgrade


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
