"""A job's inputs and attempts are read from their rows by pydantic (``from_attributes``),
not copied field by field; their JSON is what the API always served."""

from __future__ import annotations

from datetime import UTC, datetime

from visionq.api.schemas import AttemptPublic, InputPublic
from visionq.models.tables import Attempt, JobInput
from visionq.vision.changes import MEANINGS, Change


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


def test_an_input_row_stored_before_the_change_codes_still_reads() -> None:
    """Rows written before the codes hold a sentence for a GIF/BMP/TIFF: shown as is."""
    row = JobInput(
        position=0, sha256="a" * 64, mime_type="image/png", width=8, height=6, byte_size=100,
        transport="inline", changes=["converted GIF to PNG (first frame of 12)", "cmyk_to_rgb"],
    )  # fmt: skip
    assert InputPublic.model_validate(row).changes == [
        "converted GIF to PNG (first frame of 12)",
        "cmyk_to_rgb",
    ]


def test_the_changes_description_lists_every_code() -> None:
    description = InputPublic.model_fields["changes"].description or ""
    assert set(MEANINGS) == set(Change)
    for change in Change:
        assert f"{change.value} (" in description, change
    assert "converted GIF to PNG" not in description.split("Jobs stored before")[0]


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
