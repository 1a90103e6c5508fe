"""Batch intake's pure parts (issue 19, part B): admit_fields is admit without the images,
items' fields are admitted once per distinct field set, an item's fields override the
batch's defaults, the call's shape is checked as a whole, and job rows hold the budget as
single submits do."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from PIL import Image

from visionq.api import batch_intake
from visionq.api.batch_body import ImagePart, RawItems, check_shape
from visionq.api.batch_images import ImageWork, store_images
from visionq.api.batch_intake import _admit_fields, _New, merged_job
from visionq.api.batch_schemas import BatchImageRef as ImageRef
from visionq.api.batch_schemas import BatchItemIn
from visionq.api.batch_store import PlannedJob, job_rows
from visionq.api.errors import ApiError
from visionq.api.job_checks import admit, admit_fields
from visionq.api.rawjob import RawJob
from visionq.api.schemas import ErrorDetail
from visionq.models.batchjobs import CachedAnswer
from visionq.models.blobs import BlobStoreUnavailableError
from visionq.models.jobs import NewInput
from visionq.models.settings import Settings
from visionq.models.tables import Batch
from visionq.vision.catalogue import load_catalogue
from visionq.vision.costing import reservation_nusd
from visionq.vision.estimate import CostRange, StoredEstimate
from visionq.vision.tasks import JobOptions


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 30, 200)).save(out, "PNG")
    return out.getvalue()


def _item(key: str = "k", **fields: Any) -> BatchItemIn:
    return BatchItemIn.model_validate({"key": key, "images": [{"sha256": "0" * 64}], **fields})


@pytest.mark.parametrize(
    "raw",
    [
        RawJob(task="caption"),
        RawJob(task="Classify", labels=[" cat ", "dog"], options={"temperature": 0}),
        RawJob(task="ask", prompt="  How many?  ", model="models/gemini-3.5-flash-lite"),
        RawJob(task="custom", prompt="Fill it.", schema={"type": "object"}),
        RawJob(task="detect", options={"economy": True, "max_side": 512}),
    ],
)
def test_admit_fields_is_admit_without_the_images(tmp_path: Path, raw: RawJob) -> None:
    settings, catalogue = Settings(data_dir=tmp_path), load_catalogue()
    raw.images = [_png()]
    assert admit_fields(raw, 1, settings, catalogue) == admit(raw, settings, catalogue).fields


@pytest.mark.parametrize(
    "raw",
    [RawJob(task="nope"), RawJob(task="classify"), RawJob(task="caption", options={"x": 1})],
)
def test_admit_fields_refuses_as_admit_does(tmp_path: Path, raw: RawJob) -> None:
    settings, catalogue = Settings(data_dir=tmp_path), load_catalogue()
    raw.images = [_png()]
    with pytest.raises(ApiError) as whole:
        admit(raw, settings, catalogue)
    with pytest.raises(ApiError) as fields:
        admit_fields(raw, 1, settings, catalogue)
    assert (fields.value.code, fields.value.message) == (whole.value.code, whole.value.message)


def _batch(**fields: Any) -> Batch:
    defaults: dict[str, Any] = {"task": "caption", "prompt": None, "model": None, "labels": None,
                "options": {}, "response_schema": None}  # fmt: skip
    return Batch(**(defaults | fields))


def test_an_items_fields_override_the_batch_defaults() -> None:
    batch = _batch(task="classify", labels=["a", "b"], options={"temperature": 0, "cache": False})
    merged = merged_job(batch, _item(labels=["c", "d"], options={"temperature": 1}))
    assert merged.task == "classify" and merged.labels == ["c", "d"]
    assert merged.options == {"temperature": 1, "cache": False}
    assert merged_job(batch, _item()).labels == ["a", "b"]


def test_fields_are_admitted_once_per_distinct_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[RawJob] = []
    real = admit_fields

    def counting(raw: RawJob, *args: Any) -> Any:
        calls.append(raw)
        return real(raw, *args)

    monkeypatch.setattr(batch_intake, "admit_fields", counting)
    resources = cast(Any, SimpleNamespace(
        settings=Settings(data_dir=tmp_path), costs=SimpleNamespace(catalogue=load_catalogue())
    ))  # fmt: skip
    new = [_New(_item(f"k{i}")) for i in range(5)]
    new += [_New(_item("other", prompt="Short.")), _New(_item("bad", options={"temperature": 9}))]
    new.append(_New(_item("bad2", options={"temperature": 9})))
    rejected: dict[str, ErrorDetail] = {}
    _admit_fields(new, _batch(), resources, rejected)
    assert len(calls) == 3  # the defaults, the prompt override, the bad option
    assert all(one.fields == new[0].fields for one in new[:5])
    assert new[5].fields is not None and new[5].fields.prompt == "Short."
    assert set(rejected) == {"bad", "bad2"} and rejected["bad"].code == "invalid_options"


def _shape_error(items: list[dict[str, Any]], *, parts: int = 0, multipart: bool = False) -> str:
    raw = RawItems(
        items=[BatchItemIn.model_validate(item) for item in items],
        parts=[ImagePart(b"x", None, 1)] * parts,
    )
    with pytest.raises(ApiError) as caught:
        check_shape(raw, Settings(batch_max_items_per_add=3), multipart=multipart)
    return caught.value.code


def test_the_calls_shape_is_checked_as_a_whole() -> None:
    ref = [{"sha256": "0" * 64}]
    assert _shape_error([{"key": f"{i}", "images": ref} for i in range(4)]) == "too_many_items"
    assert _shape_error([{"key": "a", "images": ref}] * 2) == "duplicate_item_key"
    for key in ("a\x00b", "tab\there", "del\x7f"):
        assert _shape_error([{"key": key, "images": ref}]) == "invalid_item_key"
    assert _shape_error([{"key": "a", "images": [{"part": 0}]}], parts=1) == "invalid_request"
    part = [{"key": "a", "images": [{"part": 1}]}]
    assert _shape_error(part, parts=1, multipart=True) == "invalid_request"
    data = [{"key": "a", "images": [{"data": "AAAA"}]}]
    assert _shape_error(data, multipart=True) == "invalid_request"


def _plan(cost: str | None, *, cache: bool = True, key: str = "c1") -> PlannedJob:
    settings = Settings()
    fields = admit_fields(RawJob(task="caption", options={"cache": cache}), 1, settings,
                          load_catalogue())  # fmt: skip
    estimate = StoredEstimate(
        model=fields.model, cost_usd=CostRange(min=cost, max=cost) if cost else None
    )
    image = NewInput("a" * 64, "image/png", 64, 48, 100)
    return PlannedJob(fields, fields.options, estimate, [image], key)


def test_job_rows_hold_each_jobs_worst_case_unless_cached() -> None:
    plans = [_plan("0.001"), _plan("0.002", key="c2"), _plan("0.004", cache=False)]
    answer = CachedAnswer("x" * 36, {"text": "hi"}, "v1")
    rows, total = job_rows(plans, tenant="t", cached={"c1": answer}, capped=True)
    assert [row.cached for row in rows] == [answer, None, None]
    assert [row.reserved_nusd for row in rows] == [
        0, reservation_nusd(plans[1].estimate), reservation_nusd(plans[2].estimate)
    ]  # fmt: skip
    assert total == sum(row.reserved_nusd for row in rows) > 0
    assert len({row.id for row in rows}) == 3
    uncapped, nothing = job_rows(plans, tenant="t", cached={}, capped=False)
    assert nothing == 0 and all(row.reserved_nusd == 0 for row in uncapped)
    assert isinstance(plans[0].options, JobOptions)


class _Blobs:
    """A blob store that keeps nothing, or refuses every write."""

    def __init__(self, *, full: bool = False) -> None:
        self.full = full
        self.puts = 0

    def put(self, data: bytes) -> str:
        if self.full:
            raise BlobStoreUnavailableError("no space left on device", full=True)
        self.puts += 1
        return hashlib.sha256(data).hexdigest()


def _image_resources(tmp_path: Path, blobs: _Blobs) -> Any:
    return SimpleNamespace(settings=Settings(data_dir=tmp_path), blobs=blobs, intake_pool=None)


def test_a_bad_image_rejects_its_item_only(tmp_path: Path) -> None:
    blobs = _Blobs()
    good, stored = ImageRef.model_validate({"part": 0}), NewInput("b" * 64, "image/png", 9, 9, 99)
    work = [
        ImageWork([good], None),
        ImageWork([good, ImageRef.model_validate({"part": 1})], None),
        ImageWork([ImageRef.model_validate({"sha256": "b" * 64})], None),
        ImageWork([ImageRef.model_validate({"sha256": "c" * 64})], None),
    ]
    parts = [ImagePart(_png(), "a.png", 1), ImagePart(b"\x89PNG\r\n\x1a\nbroken", "b.png", 16)]
    results = store_images(
        work, parts=parts, stored={"b" * 64: stored}, resources=_image_resources(tmp_path, blobs)
    )
    assert [r.error.code if r.error else None for r in results] == [
        None, "corrupt_image", None, "image_not_stored"
    ]  # fmt: skip
    assert (results[0].received, results[0].referenced, results[0].inputs[0].width) == (1, 0, 64)
    assert "'b.png'" in str(results[1].error and results[1].error.message)
    assert (results[2].received, results[2].referenced, results[2].inputs) == (0, 1, [stored])


def test_a_blob_store_fault_fails_the_whole_call(tmp_path: Path) -> None:
    work = [ImageWork([ImageRef.model_validate({"part": 0})], None)] * 3
    with pytest.raises(BlobStoreUnavailableError):
        store_images(
            work, parts=[ImagePart(_png(), None, 1)], stored={},
            resources=_image_resources(tmp_path, _Blobs(full=True)),
        )  # fmt: skip
