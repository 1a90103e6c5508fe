"""The economy option's plan (vision.economy), from the model catalogue."""

import pytest

from tests.unit.tile_models import CATALOGUE
from visionq.vision.economy import economy_plan
from visionq.vision.tasks import TaskKind


def test_economy_plan_for_a_caption() -> None:
    plan = economy_plan(
        model="test-tiles",
        task=TaskKind.CAPTION,
        images=[(1000, 800), (300, 300), (3840, 2160)],
        media_resolution=None,
        catalogue=CATALOGUE,
    )
    data = plan.model_dump(mode="json")
    assert data["applies"] is True
    assert data["max_side"] == 768
    assert data["rule"] == "test-tiles"
    assert data["images"] == [
        {
            "width": 1000,
            "height": 800,
            "tokens": 1032,
            "target": {"width": 768, "height": 614, "tokens": 258},
            "tokens_saved": 774,
        },
        {"width": 300, "height": 300, "tokens": 258, "target": None, "tokens_saved": 0},
        {
            "width": 3840,
            "height": 2160,
            "tokens": 3870,
            "target": {"width": 768, "height": 432, "tokens": 258},
            "tokens_saved": 3612,
        },
    ]
    assert data["tokens_saved"] == 774 + 3612
    assert data["reason"] is None


def test_economy_plan_crop_unit() -> None:
    plan = economy_plan(
        model="test-crop",
        task=TaskKind.CLASSIFY,
        images=[(960, 540)],
        media_resolution=None,
        catalogue=CATALOGUE,
    )
    assert plan.max_side == 384
    target = plan.images[0].target
    assert target is not None
    assert (target.width, target.height, target.tokens) == (384, 216, 258)
    assert plan.tokens_saved == 1548 - 258


@pytest.mark.parametrize(
    ("model", "task", "media_resolution", "reason"),
    [
        ("test-tiles", TaskKind.DETECT, None, "task detect needs the full resolution"),
        ("test-tiles", TaskKind.SEGMENT, None, "task segment needs the full resolution"),
        ("gemini-3.8-flash", TaskKind.DETECT, None, "task detect needs the full resolution"),
        ("test-later", TaskKind.ASK, None, "(flat) does not depend on image size"),
        ("test-tiles", TaskKind.CAPTION, "LOW", "already in the cheapest token tier"),
        ("gemini-3.8-flash", TaskKind.CAPTION, "low", "already at the cheapest level"),
        ("gpt-4o", TaskKind.CAPTION, None, "gpt-4o is not in the model catalogue"),
    ],
)
def test_economy_plan_leaves_images_alone(
    model: str, task: TaskKind, media_resolution: str | None, reason: str
) -> None:
    plan = economy_plan(
        model=model,
        task=task,
        images=[(3840, 2160)],
        media_resolution=media_resolution,
        catalogue=CATALOGUE,
    )
    assert plan.applies is False
    assert plan.max_side is None
    assert plan.media_resolution is None
    assert plan.tokens_saved == 0
    assert plan.images[0].target is None
    assert plan.reason is not None
    assert reason in plan.reason


def test_economy_plan_by_level_on_gemini_3() -> None:
    # A smaller image costs the same under a media_resolution rule: economy sends the
    # request's lowest level instead, and leaves images that have a level of their own.
    plan = economy_plan(
        model="gemini-3.8-flash",
        task=TaskKind.ASK,
        images=[(3840, 2160), (100, 100), (640, 480)],
        media_resolution=None,
        image_media_resolution=[None, "ULTRA_HIGH", None],
        catalogue=CATALOGUE,
    )
    data = plan.model_dump(mode="json")
    assert data["applies"] is True
    assert data["media_resolution"] == "LOW"
    assert data["max_side"] is None
    assert data["images"] == [
        {
            "width": 3840,
            "height": 2160,
            "tokens": 1120,
            "target": {"width": 3840, "height": 2160, "tokens": 280},
            "tokens_saved": 840,
        },
        {"width": 100, "height": 100, "tokens": 2240, "target": None, "tokens_saved": 0},
        {
            "width": 640,
            "height": 480,
            "tokens": 1120,
            "target": {"width": 640, "height": 480, "tokens": 280},
            "tokens_saved": 840,
        },
    ]
    assert data["tokens_saved"] == 2 * 840
    assert data["reason"] is None
