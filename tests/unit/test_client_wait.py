"""VisionqClient (issue 17): wait() polls many jobs per request with a growing pause and
outlasts an API that is down or restarting; image URLs; sequence arguments given as str."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import visionq.client.api
from visionq.client.api import PAGE_SIZE_MIN, VisionqClient, VisionqError
from visionq.client.inputs import part_names
from visionq.models.settings import Settings

IDS = [f"0000000{n}-0000-4000-8000-000000000000" for n in range(3)]
Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    """A fake clock for client.api: sleeping advances it, and the pauses are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(
        visionq.client.api, "time", SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep)
    )
    return fake


def _job(job_id: str, status: str) -> dict[str, Any]:
    return {"id": job_id, "status": status, "task": "caption", "model": "m",
            "created_at": "2026-12-05T00:00:00Z"}  # fmt: skip


def _page(jobs: list[dict[str, Any]], missing: list[str] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"jobs": jobs, "next_cursor": None, "missing": missing or []})


def _client(handle: Handler) -> VisionqClient:
    return VisionqClient("http://api.test", "k", transport=httpx.MockTransport(handle))


def test_wait_asks_for_every_unfinished_job_in_one_request(clock: Clock) -> None:
    asked: list[list[str]] = []
    rounds = iter([["queued"] * 3, ["running", "succeeded", "queued"], ["succeeded"] * 3])

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/jobs", request.url
        ids = request.url.params["ids"].split(",")
        asked.append(ids)
        statuses = dict(zip(IDS, next(rounds), strict=True))
        return _page([_job(job_id, statuses[job_id]) for job_id in ids])

    with _client(handle) as api:
        jobs = api.wait(IDS, timeout=60)
    assert [job.status for job in jobs.values()] == ["succeeded"] * 3
    # One request per round; a job seen finished is not asked for again.
    assert asked == [IDS, IDS, [IDS[0], IDS[2]]]


def test_wait_asks_in_batches_every_api_accepts(clock: Clock) -> None:
    many = [str(uuid.UUID(int=n + 1)) for n in range(250)]
    sizes: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        ids = request.url.params["ids"].split(",")
        sizes.append(len(ids))
        return _page([_job(job_id, "succeeded") for job_id in ids])

    with _client(handle) as api:
        assert len(api.wait(many, timeout=60)) == 250
    assert sizes == [PAGE_SIZE_MIN, PAGE_SIZE_MIN, 50]
    # The API's VISIONQ_PAGE_SIZE_MAX cannot be set below the client's batch.
    [lowest] = [m.ge for m in Settings.model_fields["page_size_max"].metadata if hasattr(m, "ge")]
    assert lowest >= PAGE_SIZE_MIN


def test_the_pause_between_rounds_grows_to_its_cap(clock: Clock) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return _page([_job(IDS[0], "running" if clock.now < 30 else "succeeded")])

    with _client(handle) as api:
        api.wait([IDS[0]], timeout=120)
    assert clock.sleeps[0] == 0.25
    assert clock.sleeps == sorted(clock.sleeps) and max(clock.sleeps) == 2.0
    assert len(clock.sleeps) < 30  # ~17 rounds in 30 s, not 120 at 0.25 s


def test_wait_outlasts_an_api_that_is_down_then_restarting(clock: Clock) -> None:
    answers: list[Callable[[], httpx.Response]] = []

    def refused() -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    answers += [refused] * 20  # a deploy: nothing listens for a while
    answers += [lambda: httpx.Response(502, text="bad gateway")]  # the proxy, then the API
    answers += [lambda: httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}},
                                       headers={"Retry-After": "1"})]  # fmt: skip
    answers += [lambda: _page([_job(IDS[0], "succeeded")])]

    def handle(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)()

    with _client(handle) as api:
        jobs = api.wait([IDS[0]], timeout=600)
    assert jobs[IDS[0]].status == "succeeded" and not answers
    assert max(clock.sleeps) <= visionq.client.api.WAIT_RETRY_CAP_S


def test_wait_gives_up_at_its_timeout_when_the_api_stays_down(clock: Clock) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with _client(handle) as api, pytest.raises(TimeoutError, match="did not answer"):
        api.wait([IDS[0]], timeout=30)
    assert 25 <= clock.now <= 30


def test_a_refusal_is_not_retried(clock: Clock) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "invalid_api_key", "message": "x"}})

    with _client(handle) as api, pytest.raises(VisionqError) as raised:
        api.wait([IDS[0]], timeout=30)
    assert raised.value.status == 401 and clock.sleeps == []


def test_an_id_of_no_job_is_a_404(clock: Clock) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return _page([_job(IDS[0], "succeeded")], missing=[IDS[1]])

    with _client(handle) as api, pytest.raises(VisionqError) as raised:
        api.wait(IDS[:2])
    assert raised.value.status == 404 and IDS[1] in raised.value.message


def test_a_prefix_is_resolved_once_and_results_keep_the_ids_given(clock: Clock) -> None:
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/v1/jobs/00000001":
            return httpx.Response(200, json=_job(IDS[1], "queued"))
        return _page([_job(IDS[1], "succeeded")])

    with _client(handle) as api:
        jobs = api.wait("00000001")  # a bare str is one id, not eight
    assert list(jobs) == ["00000001"] and jobs["00000001"].id == IDS[1]
    assert paths == ["/v1/jobs/00000001", "/v1/jobs"]


def _sent(send: Callable[[VisionqClient], object]) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=_job(IDS[0], "queued"))

    with _client(handle) as api:
        send(api)
    return seen[0]


def test_labels_as_one_string_are_split_on_commas() -> None:
    request = _sent(lambda api: api.submit([b"png"], task="classify", labels="cat, dog,"))
    assert b'name="labels"\r\n\r\n["cat", "dog"]' in request.content


def test_sequence_arguments_are_never_taken_a_character_at_a_time(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"png bytes")
    request = _sent(lambda api: api.submit(str(photo), task="caption"))
    assert request.content.count(b'name="image"') == 1
    assert b'filename="photo.png"' in request.content
    request = _sent(lambda api: api.submit(b"raw", task="caption"))
    assert request.content.count(b'name="image"') == 1
    with pytest.raises(TypeError, match="labels must be strings"):
        _sent(lambda api: api.submit([b"x"], task="classify", labels=[1, 2]))  # type: ignore[list-item]
    with pytest.raises(TypeError, match="an image must be"):
        _sent(lambda api: api.submit([42], task="caption"))  # type: ignore[list-item]


def test_a_url_image_is_sent_as_json_with_the_others_inline(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"png bytes")
    request = _sent(
        lambda api: api.submit(
            ["https://images.example/cat.jpg", photo], task="compare", labels=None,
            options={"max_side": 512},
        )
    )  # fmt: skip
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body == {
        "task": "compare",
        "images": [{"url": "https://images.example/cat.jpg"}, {"data": "cG5nIGJ5dGVz"}],
        "options": {"max_side": 512},
    }
    # A str that is not an http(s) URL is a path.
    request = _sent(lambda api: api.submit([str(photo)], task="caption"))
    assert request.headers["content-type"].startswith("multipart/form-data")


def test_bytes_images_are_named_from_1(tmp_path: Path) -> None:
    request = _sent(lambda api: api.submit([b"one", b"two"], task="compare"))
    assert b'filename="image-1"' in request.content
    assert b'filename="image-2"' in request.content
    assert b'filename="image-0"' not in request.content


def test_files_with_the_same_base_name_are_sent_under_unique_names(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "photo.jpg").write_bytes(folder.encode())
    images = [tmp_path / "a" / "photo.jpg", tmp_path / "b" / "photo.jpg"]
    request = _sent(lambda api: api.submit(images, task="compare"))
    assert b'filename="1-photo.jpg"' in request.content
    assert b'filename="2-photo.jpg"' in request.content
    assert part_names([*images, b"x"]) == ["1-photo.jpg", "2-photo.jpg", "3-image-3"]
    # Distinct names are sent as they are.
    assert part_names([images[0], tmp_path / "c.png"]) == ["photo.jpg", "c.png"]
