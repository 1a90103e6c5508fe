"""The client retries a submission on 429/503 with one Idempotency-Key (a fake server)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from visionq.client.api import VisionqClient, VisionqError

JOB = {"id": "j1", "status": "queued", "task": "caption", "model": "m",
       "created_at": "2026-11-24T00:00:00Z"}  # fmt: skip


def _error(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": code}}
    return httpx.Response(status, json=body, headers=headers)


def _client(answers: list[httpx.Response], seen: list[httpx.Request]) -> VisionqClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return VisionqClient("http://api.test", "k", transport=httpx.MockTransport(handle))


def test_rate_limits_and_outages_are_retried_with_one_key() -> None:
    seen: list[httpx.Request] = []
    answers = [
        _error(429, "rate_limited", **{"Retry-After": "0"}),
        _error(503, "unavailable", **{"Retry-After": "0"}),
        httpx.Response(202, json=JOB),
    ]
    with _client(answers, seen) as client:
        job = client.submit([b"png"], task="caption")
    assert job.id == "j1"
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(seen) == 3 and len(keys) == 1


@pytest.mark.parametrize("status", [400, 402, 413, 422])
def test_refusals_are_not_retried(status: int) -> None:
    seen: list[httpx.Request] = []
    with _client([_error(status, "nope")], seen) as client, pytest.raises(VisionqError) as raised:
        client.submit([b"png"], task="caption")
    assert raised.value.status == status and len(seen) == 1


def test_retries_are_bounded() -> None:
    seen: list[httpx.Request] = []
    answers = [_error(429, "rate_limited", **{"Retry-After": "0"}) for _ in range(3)]
    with _client(answers, seen) as client, pytest.raises(VisionqError) as raised:
        client.submit([b"png"], task="caption", retries=2)
    assert raised.value.code == "rate_limited" and len(seen) == 3


def test_a_nonsense_retry_after_is_ignored() -> None:
    for value in ("nan", "-1", "inf", "soon"):
        error = _error(429, "rate_limited", **{"Retry-After": value})
        seen: list[httpx.Request] = []
        with _client([error], seen) as client, pytest.raises(VisionqError) as raised:
            client.submit([b"png"], task="caption", retries=0)
        assert raised.value.retry_after is None


def _form(request: httpx.Request) -> bytes:
    """The multipart body without its (random) boundary."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    return request.content.replace(boundary, b"BOUNDARY")


def test_submit_and_estimate_send_the_same_form() -> None:
    seen: list[httpx.Request] = []
    fields: dict[str, Any] = {
        "task": "classify",
        "prompt": "which?",
        "labels": ["cat", "dog"],
        "model": "gemini-2.5-flash",
        "options": {"max_side": 512},
        "schema": {"type": "object"},
    }
    answers = [httpx.Response(202, json=JOB), httpx.Response(200, json={"cost_usd": "0"})]
    with _client(answers, seen) as client:
        client.submit([b"png", b"jpg"], **fields)
        assert client.estimate([b"png", b"jpg"], **fields) == {"cost_usd": "0"}
    submitted, estimated = seen
    assert (submitted.url.path, estimated.url.path) == ("/v1/jobs", "/v1/estimate")
    assert _form(submitted) == _form(estimated)
    for part in (b'name="labels"\r\n\r\n["cat", "dog"]', b'name="options"', b'name="schema"'):
        assert part in _form(submitted)
    assert _form(submitted).count(b'name="image"') == 2
    assert "idempotency-key" in submitted.headers
    assert "idempotency-key" not in estimated.headers


def test_an_estimate_is_not_retried() -> None:
    seen: list[httpx.Request] = []
    answers = [_error(503, "unavailable", **{"Retry-After": "0"})]
    with _client(answers, seen) as client, pytest.raises(VisionqError) as raised:
        client.estimate([b"png"], task="caption")
    assert raised.value.status == 503 and len(seen) == 1


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
        (httpx.ConnectTimeout(""), "timed out"),
        (httpx.RemoteProtocolError("Server disconnected."), "server disconnected"),
    ],
)
def test_no_answer_is_said_without_an_http_status(error: httpx.TransportError, said: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise error

    client = VisionqClient("http://api.test/", "k", transport=httpx.MockTransport(handle))
    with client, pytest.raises(VisionqError) as raised:
        client.job("j1")
    assert str(raised.value) == (
        f"cannot reach the visionq API (no answer from http://api.test: {said}); is it "
        "running? Set --url or VISIONQ_URL"
    )
    # Still a status 0 for the code that retries it.
    assert raised.value.status == 0 and raised.value.transient
