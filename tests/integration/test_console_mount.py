"""CORS and the /console mount (issue 22): preflights allowed and refused in the error
shape, both off unless enabled, and the console files' security and caching headers. In
process (inprocess.py): none of it needs a worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.integration.conftest import redis_db
from tests.integration.inprocess import InProcessApi, in_process_api
from visionq.api.console_files import CONTENT_SECURITY_POLICY, install_console
from visionq.api.errors import install_error_handlers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cors_api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[InProcessApi]:
    with in_process_api(
        Path(tmp_path_factory.mktemp("cors")),
        redis_db(redis_url),
        ("acme",),
        cors_allow_origins=["https://ui.example"],
        cors_max_age_s=120,
        console_enabled=False,
    ) as app:
        yield app


def _preflight(
    client: TestClient, origin: str, method: str = "GET", **extra: str
) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": method, **extra}
    return client.options("/v1/jobs", headers=headers)


def test_cors_preflight_allowed_and_refused(cors_api: InProcessApi) -> None:
    with cors_api.client(None) as client:
        allowed = _preflight(
            client, "https://ui.example", "POST",
            **{"Access-Control-Request-Headers": "authorization, idempotency-key"},
        )  # fmt: skip
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == "https://ui.example"
        assert allowed.headers["access-control-max-age"] == "120"
        assert "credentials" not in " ".join(allowed.headers.keys()).lower()
        for refused in (
            _preflight(client, "https://evil.example"),
            _preflight(client, "https://ui.example", "PUT"),
            _preflight(
                client, "https://ui.example", **{"Access-Control-Request-Headers": "x-secret"}
            ),
        ):
            assert refused.status_code == 400
            assert refused.json()["error"]["code"] == "cors_refused"
            assert "VISIONQ_CORS_ALLOW_ORIGINS" in refused.json()["error"]["message"]
        # An actual call from the origin: the header on answers, error answers too.
        denied = client.get("/v1/jobs", headers={"Origin": "https://ui.example"})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == "https://ui.example"
        assert "Retry-After" in denied.headers["access-control-expose-headers"]
        stranger = client.get("/v1/jobs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers


def test_no_cors_and_no_console_unless_enabled(api: InProcessApi, cors_api: InProcessApi) -> None:
    with api.client("acme") as client:
        plain = client.get("/v1/jobs", headers={"Origin": "https://ui.example"})
        assert plain.status_code == 200
        assert "access-control-allow-origin" not in plain.headers
        preflight = _preflight(client, "https://ui.example")
        assert preflight.status_code == 405  # no CORS: OPTIONS is just a method not taken
        redirect = client.get("/console", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"] == "/console/"
    with cors_api.client(None) as client:
        for path in ("/console", "/console/", "/console/js/main.js"):
            off = client.get(path, follow_redirects=False)
            assert off.status_code == 404, path
            assert off.json()["error"]["code"] == "not_found"


def test_console_files_and_headers(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "js" / "main.js").write_text("export const x = 1;\n")
    app = FastAPI()
    install_error_handlers(app)
    install_console(app, tmp_path)
    missing = FastAPI()
    install_error_handlers(missing)
    install_console(missing, tmp_path / "absent")  # a missing folder: 404s, no failure
    with TestClient(app) as client, TestClient(missing) as empty:
        page = client.get("/console/")
        assert page.status_code == 200 and "console" in page.text
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self';" in CONTENT_SECURITY_POLICY
        assert CONTENT_SECURITY_POLICY.endswith("; require-trusted-types-for 'script'")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"
        script = client.get("/console/js/main.js")
        assert script.headers["content-type"].startswith(
            ("text/javascript", "application/javascript")
        )
        again = client.get("/console/js/main.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304
        assert again.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        nope = client.get("/console/nope.js")
        assert nope.status_code == 404 and nope.json()["error"]["code"] == "not_found"
        posted = client.post("/console/")
        assert posted.status_code == 405 and posted.json()["error"]["code"] == "method_not_allowed"
        assert client.get("/console", follow_redirects=False).status_code == 307
        gone = empty.get("/console/")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
