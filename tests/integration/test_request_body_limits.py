"""Request bodies over max_request_bytes (a 413 on a raw socket) and cut short (a 400)."""

from __future__ import annotations

import json
import socket
import time
from select import select as poll
from typing import Any

import httpx
import pytest

from tests.integration.bad_input_corpus import (
    CAPTION,
    MAX_REQUEST_BYTES,
    PNG,
    Corpus,
    assert_error,
    corpus,
    stack_corpus,
    unterminated,
)

__all__ = ["corpus", "stack_corpus"]  # fixtures used by this module

pytestmark = pytest.mark.integration


def _connect(corpus: Corpus) -> socket.socket:
    url = httpx.URL(corpus.process_stack.api_url)
    assert url.port is not None
    return socket.create_connection((url.host, url.port), timeout=30)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the one HTTP/1.1 response on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = (line.partition(":") for line in lines[1:])
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the response"
        body += chunk
    return status, json.loads(body[:length])


def _request_head(corpus: Corpus, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {corpus.key}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=b"])
def test_declared_content_length_over_the_limit_is_413_before_the_body(
    stack_corpus: Corpus, content_type: str
) -> None:
    """Only the headers are sent: the answer cannot have waited for (or buffered) the body."""
    before = stack_corpus.job_count()
    declared = MAX_REQUEST_BYTES + 1
    head = _request_head(
        stack_corpus, "/v1/jobs", {"Content-Type": content_type, "Content-Length": str(declared)}
    )
    started = time.monotonic()
    with _connect(stack_corpus) as sock:
        sock.sendall(head)
        status, body = _read_response(sock)
    assert time.monotonic() - started < 5
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert f"{declared:,}" in body["error"]["message"]
    assert stack_corpus.job_count() == before


def test_chunked_json_body_over_the_limit_is_413(stack_corpus: Corpus) -> None:
    """No Content-Length: the limit holds while reading, and the answer comes as soon as it
    is crossed (the client stops sending when the response arrives)."""
    before = stack_corpus.job_count()
    head = _request_head(
        stack_corpus,
        "/v1/jobs",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    piece = b" " * (1024 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    with _connect(stack_corpus) as sock:
        sock.sendall(head + b'7\r\n{"task"\r\n')
        while sent <= MAX_REQUEST_BYTES + 16 * len(piece):
            readable, _, _ = poll([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed; its answer is still to be read
            sent += len(piece)
        status, body = _read_response(sock)
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert MAX_REQUEST_BYTES < sent < MAX_REQUEST_BYTES + 16 * len(piece)
    assert stack_corpus.job_count() == before


def test_an_unterminated_multipart_body_says_so(corpus: Corpus) -> None:
    response = unterminated(CAPTION, [PNG])(corpus)
    assert_error(response, 400, "invalid_multipart")
    assert "ended before its closing boundary" in response.json()["error"]["message"]
