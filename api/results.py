"""The shapes of a job's ``result``, per task, as the worker stores them (vision/tasks.py
parse_answer, worker/storing.py for segment). They type the OpenAPI document; a job's
result is served as stored, not re-validated (tests/unit/test_openapi.py checks the worker's
results against these models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TextResult(BaseModel):
    """caption, ask and compare (and custom without a schema): the answer's text."""

    text: str


class ClassifyResult(BaseModel):
    """classify: the label picked among the job's labels, and the answer as given."""

    label: str = Field(description="One of the job's labels ('' when none matched).")
    text: str = Field(description="The model's answer, as it came.")


class CustomResult(BaseModel):
    """custom: the answer, a JSON value satisfying the job's schema."""

    answer: Any = Field(alias="json", description="The answer; its shape is the job's schema.")


class ImageSize(BaseModel):
    width: int
    height: int


class DetectedObject(BaseModel):
    label: str
    box_2d: list[float] = Field(
        description="[ymin, xmin, ymax, xmax] on a 0-1000 grid, as the model gave it."
    )
    box: list[int] = Field(description="[x0, y0, x1, y1] in pixels of the upright image.")


class SegmentedObject(DetectedObject):
    area: int = Field(description="Pixels of the mask.")
    mask_sha256: str
    mask_url: str = Field(description="GET it for the mask, a binary PNG of the box's size.")


class DetectResult(BaseModel):
    """detect: boxes and labels."""

    objects: list[DetectedObject]
    skipped: int = Field(description="Items of the answer that were not a valid box.")
    image: ImageSize


class SegmentResult(BaseModel):
    """segment: boxes, labels and masks."""

    objects: list[SegmentedObject]
    skipped: int = Field(description="Items of the answer that were not a valid mask.")
    image: ImageSize


# Most specific first: a generated client tries the shapes in order and keeps the first
# that reads (a classify result would also read as a TextResult).
RESULT_MODELS: tuple[type[BaseModel], ...] = (
    SegmentResult,
    DetectResult,
    ClassifyResult,
    CustomResult,
    TextResult,
)
COMPONENTS = "#/components/schemas/{model}"
RESULT_DESCRIPTION = (
    "Set once the job succeeded. caption, ask, compare: TextResult; classify: "
    "ClassifyResult; detect: DetectResult; segment: SegmentResult; custom: CustomResult."
)


def result_schema() -> dict[str, Any]:
    """The JSON schema of JobPublic.result: one of the result models (their schemas are
    added to the document's components by api.openapi), or null."""
    refs: list[dict[str, Any]] = [
        {"$ref": COMPONENTS.format(model=model.__name__)} for model in RESULT_MODELS
    ]
    return {"anyOf": [*refs, {"type": "null"}], "description": RESULT_DESCRIPTION}
