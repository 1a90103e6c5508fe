"""The Spending page draws GET /v1/spending: the cost bars add up to its total, and the
estimate-accuracy chart has one bar per model it reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from tests.browser.drive import expect, go, shot, sign_in, tid, two_models, wait_job, wait_until
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png, submit


def test_spending_bars_add_up_to_the_reported_total(
    page, stack: ConsoleStack, api_client: httpx.Client
) -> None:
    first, second = two_models(api_client)
    jobs = [
        submit(api_client, scene_png(seed=80 + i)[0], task="caption", model=model)
        .raise_for_status()
        .json()["id"]
        for i, model in enumerate((first, first, second))
    ]
    for job_id in jobs:
        assert wait_job(api_client, job_id)["status"] == "succeeded"

    sign_in(page, stack)
    go(page, "#/spending")
    expect(tid(page, "spending-days")).to_have_value("30")
    bars = tid(tid(page, "chart-cost"), "chart-bar")
    expect(bars.first).to_be_attached()

    def agrees() -> dict[str, Any] | None:
        report: dict[str, Any] = api_client.get("/v1/spending", params={"days": 30}).json()
        drawn = bars.evaluate_all("bars => bars.map(b => b.dataset.usd)")
        total = tid(page, "spending-total").get_attribute("data-usd")
        if (
            sum(map(Decimal, drawn))
            == Decimal(report["totals"]["cost_usd"])
            == Decimal(total or "NaN")
        ):
            return report
        page.reload()  # a job of an earlier test ended meanwhile: read both again
        expect(bars.first).to_be_attached()
        return None

    report = wait_until(agrees, 20, "the bars add up to GET /v1/spending's total")
    assert {first, second} <= {row["model"] for row in report["rows"]}
    series = set(bars.evaluate_all("bars => bars.map(b => b.dataset.series)"))
    reported = {f"{row['model']}/{row['tier']}": Decimal(row["cost_usd"]) for row in report["rows"]}
    # Every drawn series is reported; every reported one that cost anything is drawn (a
    # $0 series, e.g. cached answers, has no height to draw).
    assert series <= set(reported), (series, reported)
    assert {name for name, usd in reported.items() if usd > 0} <= series, (series, reported)
    accuracy = tid(tid(page, "chart-accuracy"), "chart-bar")
    models = accuracy.evaluate_all("bars => bars.map(b => b.dataset.model)")
    assert sorted(models) == sorted(row["model"] for row in report["estimation"])
    expect(tid(page, "accuracy-table").locator("tbody tr")).to_have_count(len(report["estimation"]))
    shot(page, "spending")
