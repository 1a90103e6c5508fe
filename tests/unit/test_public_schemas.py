"""A job's inputs and attempts are read from their rows by pydantic (``from_attributes``),
not copied field by field; their JSON is what the API always served."""

from __future__ import annotations

from datetime import UTC, datetime

from visionq.api.schemas import AttemptPublic, InputPublic
from visionq.models.tables import Attempt, JobInput


def test_an_input_row_reads_as_before() -> None:
    row = JobInput(
        position=0, sha256="a" * 64, mime_type="image/png", width=8, height=6, byte_size=100,
        transport=None, changes=None,
    )  # fmt: skip
    assert InputPublic.model_validate(row).model_dump_json() == (
        '{"position":0,"sha256":"' + "a" * 64 + '","mime_type":"image/png","width":8,'
        '"height":6,"byte_size":100,"transport":null,"changes":[]}'
    )
    row.changes, row.transport = ["first_frame"], "inline"
    assert InputPublic.model_validate(row).changes == ["first_frame"]
    assert InputPublic.model_validate(row).transport == "inline"


def test_an_attempt_row_reads_as_before() -> None:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = Attempt(
        number=1, started_at=started, finished_at=None, outcome="succeeded", error_class=None,
        error_message=None, http_status=200, retry_delay_s=None, cost_nusd=1_500_000,
    )  # fmt: skip
    assert AttemptPublic.model_validate(row).model_dump_json() == (
        '{"number":1,"started_at":"2026-01-02T03:04:05Z","finished_at":null,'
        '"outcome":"succeeded","error_class":null,"error_message":null,"http_status":200,'
        '"retry_delay_s":null,"cost_usd":"0.0015","requested_tier":null,"served_tier":null,'
        '"gemini_batch":null}'
    )
    row.cost_nusd = None
    assert AttemptPublic.model_validate(row).cost_usd is None
