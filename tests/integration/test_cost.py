"""Issue 5 end to end: estimates, actual costs, budgets under concurrency, cost report."""

from __future__ import annotations

import json
import subprocess
import threading
from decimal import Decimal

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import run_job, scene_png, submit, wait_done
from tests.services import visionq_command
from visionq.emulator.shapes import random_scene

pytestmark = pytest.mark.integration


def visionq(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        visionq_command(*args),
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def image_tokens(job: dict[str, object]) -> int:
    details = job["usage"]["details"]["prompt_tokens_details"]  # type: ignore[index]
    return next(d["token_count"] for d in details if d["modality"] == "IMAGE")


def test_estimate_endpoint_runs_nothing(stack: Stack) -> None:
    data, _ = scene_png(51, width=800, height=600)
    with stack.client() as client:
        # Ids only: jobs of earlier tests may still be running (their status changes).
        before = [job["id"] for job in client.get("/v1/jobs?limit=200").json()["jobs"]]
        response = client.post(
            "/v1/estimate", data={"task": "detect"}, files=[("image", ("a.png", data, "image/png"))]
        )
        assert response.status_code == 200, response.text
        estimate = response.json()
        after = [job["id"] for job in client.get("/v1/jobs?limit=200").json()["jobs"]]
        assert after == before
    # The catalogue's default model, billed by media resolution (HIGH by default).
    assert estimate["known"] is True and estimate["model"] == "gemini-3.5-flash-lite"
    assert estimate["images"] == [{"width": 800, "height": 600, "tokens": 1120}]
    assert estimate["input_tokens"] == 1120 + estimate["text_tokens"]
    assert Decimal(estimate["cost_usd"]["min"]) < Decimal(estimate["cost_usd"]["max"])
    assert estimate["warnings"] == []
    unknown = httpx.post(
        f"{stack.api_url}/v1/estimate",
        data={"task": "caption", "model": "gpt-4o"},
        files=[("image", ("a.png", data, "image/png"))],
        headers={"Authorization": f"Bearer {stack.keys['acme']}"},
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_model"


@pytest.mark.parametrize(
    ("width", "height", "task"),
    [(300, 300, "caption"), (1000, 800, "detect"), (1600, 1200, "classify")],
)
def test_estimated_image_tokens_equal_billed_and_cost_is_recorded(
    stack: Stack, width: int, height: int, task: str
) -> None:
    data, _ = scene_png(52, width=width, height=height)
    labels = {"labels": "one shape,two shapes,three shapes"} if task == "classify" else {}
    with stack.client() as client:
        job = run_job(client, data, task=task, **labels)
    assert job["status"] == "succeeded", job["error"]
    assert job["estimate"]["images"][0]["tokens"] == image_tokens(job)
    # The emulator counts text like the estimate does: the whole input matches.
    assert job["estimate"]["input_tokens"] == job["usage"]["prompt_tokens"]
    cost = Decimal(job["cost_usd"])
    usage = job["usage"]
    expected = (
        Decimal(usage["prompt_tokens"]) * Decimal("0.30")
        + Decimal(usage["candidates_tokens"] + (usage["thoughts_tokens"] or 0)) * Decimal("2.50")
    ) / 1_000_000
    assert abs(cost - expected) < Decimal("0.000000001")
    assert (
        Decimal(job["estimate"]["cost_usd"]["min"])
        <= cost
        <= Decimal(job["estimate"]["cost_usd"]["max"])
    )
    assert job["attempts"][0]["cost_usd"] == job["cost_usd"]


def _budget_state(stack: Stack, tenant: str) -> dict[str, str]:
    [state] = json.loads(visionq(stack, "budgets", "show", tenant, "--json").stdout)
    assert state["tenant"] == tenant
    return {"reserved": state["reserved_usd"], "spent_day": state["spent_today_usd"]}


def test_parallel_submissions_cannot_overshoot_the_budget(paused_stack: Stack) -> None:
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    tenant = f"budgeted-{paused_stack.name}"
    made = visionq(paused_stack, "keys", "create", "b", "--tenant", tenant)
    key = made.stdout.strip().splitlines()[-1]
    image, _ = random_scene(53, width=640, height=480, count=2)
    from visionq.emulator.shapes import encode

    data = encode(image, "PNG")
    headers = {"Authorization": f"Bearer {key}"}
    estimate = httpx.post(
        f"{paused_stack.api_url}/v1/estimate",
        data={"task": "caption"},
        files=[("image", ("a.png", data, "image/png"))],
        headers=headers,
    ).json()
    one = Decimal(estimate["cost_usd"]["max"])
    budget = one * 5 + one / 2  # room for exactly 5 jobs
    visionq(paused_stack, "budgets", "set", tenant, "--daily", str(budget))
    statuses: list[int] = []
    bodies: list[dict[str, object]] = []
    lock = threading.Lock()

    def submit_one() -> None:
        with httpx.Client(base_url=paused_stack.api_url, headers=headers, timeout=60) as client:
            response = client.post(
                "/v1/jobs",
                data={"task": "caption"},
                files=[("image", ("a.png", data, "image/png"))],
            )
        with lock:
            statuses.append(response.status_code)
            bodies.append(response.json())

    threads = [threading.Thread(target=submit_one) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) == [202, 402], statuses
    assert statuses.count(202) == 5, statuses
    refusal = next(body for body in bodies if body.get("error") and "id" not in body)["error"]  # type: ignore[index]
    assert refusal["code"] == "budget_exceeded"
    for word in ("daily budget", "spent today", "reserved", "may cost up to"):
        assert word in refusal["message"]
    state = _budget_state(paused_stack, tenant)
    assert Decimal(state["reserved"]) == one * 5
    # Jobs end: reservations settle to the actual (much smaller) cost.
    paused_stack.start_worker()
    admitted = [body["id"] for body in bodies if "id" in body]
    with httpx.Client(base_url=paused_stack.api_url, headers=headers, timeout=60) as client:
        jobs = [wait_done(client, job_id, timeout=60) for job_id in admitted]  # type: ignore[arg-type]
    assert all(job["status"] == "succeeded" for job in jobs)
    state = _budget_state(paused_stack, tenant)
    assert Decimal(state["reserved"]) == 0
    assert Decimal(state["spent_day"]) == sum(Decimal(job["cost_usd"]) for job in jobs)


def test_a_dollar_a_day_admits_many_captions(stack: Stack) -> None:
    """Issue 17: a caption's hold assumed 32,768 output tokens (~400x its real cost), so a
    $1 daily budget refused the 13th $0.0002 job. Now each caption holds its task's cap
    (vision.tasks.TASK_DEFAULTS), within a small multiple of what it really costs."""
    tenant = f"dollar-{stack.name}"
    key = visionq(stack, "keys", "create", "d", "--tenant", tenant).stdout.strip().splitlines()[-1]
    visionq(stack, "budgets", "set", tenant, "--daily", "1")
    data, _ = scene_png(55, width=640, height=480)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=60) as client:
        responses = [
            submit(client, data, task="caption", options={"cache": False}) for _ in range(30)
        ]
        assert [r.status_code for r in responses] == [202] * 30, responses[-1].text
        jobs = [wait_done(client, r.json()["id"]) for r in responses]
    assert all(job["status"] == "succeeded" for job in jobs), jobs[0]["error"]
    hold = Decimal(jobs[0]["estimate"]["cost_usd"]["max"])
    real = max(Decimal(job["cost_usd"]) for job in jobs)
    assert hold <= 10 * real, (hold, real)
    assert int(Decimal(1) / hold) >= 250
    assert Decimal(_budget_state(stack, tenant)["reserved"]) == 0


def test_cancel_releases_the_reservation(paused_stack: Stack) -> None:
    if paused_stack.worker is not None:
        paused_stack.worker.stop()
        paused_stack.worker = None
    tenant = f"cancelling-{paused_stack.name}"
    key = (
        visionq(paused_stack, "keys", "create", "c", "--tenant", tenant)
        .stdout.strip()
        .splitlines()[-1]
    )
    visionq(paused_stack, "budgets", "set", tenant, "--daily", "1", "--monthly", "10")
    data, _ = scene_png(54)
    with httpx.Client(
        base_url=paused_stack.api_url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        job_id = submit(client, data, task="caption").json()["id"]
        assert Decimal(_budget_state(paused_stack, tenant)["reserved"]) > 0
        client.post(f"/v1/jobs/{job_id}/cancel")
    assert Decimal(_budget_state(paused_stack, tenant)["reserved"]) == 0


def test_cost_report_proposes_a_flat_rule_when_bills_are_flat(calibration_stack: Stack) -> None:
    sizes = [(500, 400), (900, 700), (1600, 1000), (2000, 1500)]
    with calibration_stack.client() as client:
        for seed, (width, height) in enumerate(sizes):
            data, _ = scene_png(60 + seed, width=width, height=height)
            job = run_job(client, data, task="caption")
            assert job["status"] == "succeeded", job["error"]
            assert image_tokens(job) == 258
    report = json.loads(visionq(calibration_stack, "cost", "report", "--json").stdout)
    [row] = report["rows"]
    model = "gemini-3.5-flash-lite"
    assert row["key"] == model and row["jobs"] == 4 and Decimal(row["cost_usd"]) > 0
    [check] = report["estimation"]
    assert check["worst_abs_pct"] > 0
    assert check["proposal"] == {
        model: {"image_tokens": {"image_rule": "flat", "tile_tokens": 258}}
    }
    human = visionq(calibration_stack, "cost", "report", "--by", "day").stdout
    assert "proposed catalogue entry" in human and "every image was billed 258" in human


def test_identical_job_is_answered_from_the_cache_for_free(stack: Stack) -> None:
    data, _ = scene_png(70)
    with stack.client() as client:
        first = run_job(client, data, task="detect", prompt="every shape")
        assert first["status"] == "succeeded" and first["cached_from"] is None
        response = submit(client, data, task="detect", prompt="every shape")
        assert response.status_code == 202
        second = response.json()
        assert second["status"] == "succeeded" and second["cached_from"] == first["id"]
        assert second["result"] == first["result"] and second["cost_usd"] == "0"
        assert second["attempts"] == []
        fresh = run_job(client, data, task="detect", prompt="every shape", options={"cache": False})
        assert fresh["cached_from"] is None and fresh["attempt_count"] == 1
        other = run_job(client, data, task="detect", prompt="only red shapes")
        assert other["cached_from"] is None
    with stack.client("globex") as client:
        # The cache is per tenant: another tenant's identical job runs.
        assert run_job(client, data, task="detect", prompt="every shape")["cached_from"] is None


def test_economy_downscales_to_the_cheapest_tier_and_reports_savings(stack: Stack) -> None:
    data, _ = scene_png(71, width=2000, height=1500)
    with stack.client() as client:
        job = run_job(client, data, task="caption", options={"economy": True, "cache": False})
    assert job["status"] == "succeeded", job["error"]
    economy = job["estimate"]["economy"]
    assert economy["applied"] is True and economy["tokens_saved"] > 0
    # The default model bills by level, not size: HIGH (1120) by default, LOW costs 280.
    assert job["estimate"]["images"][0]["tokens"] == 280 == image_tokens(job)
    assert economy["tokens_saved"] == 1120 - 280
    assert job["options"]["media_resolution"] == economy["media_resolution"] == "LOW"
    assert "max_side" not in job["options"]


@pytest.mark.parametrize(
    ("model", "level", "tokens"),
    [
        ("gemini-3-flash-preview", "LOW", 280),
        ("gemini-3-flash-preview", None, 1120),
        ("gemini-3.5-flash-lite", "MEDIA_RESOLUTION_MEDIUM", 560),
        ("gemini-3.8-flash", "low", 280),
    ],
)
def test_media_resolution_estimate_equals_bill(
    stack: Stack, model: str, level: str | None, tokens: int
) -> None:
    data, _ = scene_png(72, width=1200, height=900)
    options = {"cache": False} | ({"media_resolution": level} if level else {})
    with stack.client() as client:
        job = run_job(client, data, task="caption", model=model, options=options)
    assert job["status"] == "succeeded", job["error"]
    assert job["estimate"]["images"][0]["tokens"] == tokens == image_tokens(job)


def test_per_image_media_resolution_on_gemini_3(stack: Stack) -> None:
    first, _ = scene_png(73, width=1200, height=900)
    second, _ = scene_png(74, width=800, height=600)
    options = {"cache": False, "image_media_resolution": ["LOW", "HIGH"]}
    with stack.client() as client:
        job = run_job(
            client,
            [first, second],
            task="ask",
            prompt="Which has more shapes?",
            model="gemini-3-flash-preview",
            options=options,
        )
        assert job["status"] == "succeeded", job["error"]
        assert [image["tokens"] for image in job["estimate"]["images"]] == [280, 1120]
        assert image_tokens(job) == 280 + 1120
        wrong = submit(
            client,
            [first, second],
            task="ask",
            prompt="x",
            options={"image_media_resolution": ["LOW"]},
        )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_options"


def test_a_budget_applies_to_every_model_and_an_unbounded_cost_is_refused(
    open_models_stack: Stack,
) -> None:
    """A tenant capped at a millionth of a dollar a day: a 402 whatever the model, and a
    model without a price (allowed by the operator) is a 422, never admitted unbounded."""
    stack = open_models_stack
    tenant = "tiny-budget"
    key = visionq(stack, "keys", "create", "t", "--tenant", tenant).stdout.strip().splitlines()[-1]
    visionq(stack, "budgets", "set", tenant, "--daily", "0.000001")
    data, _ = scene_png(75)
    with httpx.Client(
        base_url=stack.api_url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        for model in ("gemini-3.8-flash", "gemini-3.6-flash", "gemini-3.5-flash-lite"):
            response = submit(client, data, task="caption", model=model)
            assert response.status_code == 402, (model, response.text)
        unknown = submit(client, data, task="caption", model="gemini-9-experimental")
        assert unknown.status_code == 422, unknown.text
        assert unknown.json()["error"]["code"] == "cost_unbounded"
        assert "gemini-9-experimental" in unknown.json()["error"]["message"]
    # Without a budget the operator's unknown model is admitted, with a warning and no price.
    with stack.client() as client:
        admitted = submit(client, data, task="caption", model="gemini-9-experimental")
    assert admitted.status_code == 202, admitted.text
    job = admitted.json()
    assert [warning["code"] for warning in job["warnings"]] == ["model_unknown"]
    assert job["estimate"]["known"] is False and job["estimate"]["cost_usd"] is None
