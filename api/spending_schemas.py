"""The answer of GET /v1/spending: a tenant's spending per day, model and served tier."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class SpendingRow(BaseModel):
    day: date = Field(description="The UTC day the jobs finished.")
    model: str
    tier: str = Field(
        description="The tier the jobs were served at; cached for answers reused for free, "
        "unknown for jobs that ended with no served call."
    )
    jobs: int
    cached: int = Field(description="How many of the jobs were answered from the cache.")
    prompt_tokens: int
    output_tokens: int = Field(description="Candidate and thinking tokens.")
    cost_usd: str = Field(description="What the jobs cost (decimal USD, exact).")
    standard_usd: str = Field(description="The same usage priced at the standard tier.")


class SpendingTotals(BaseModel):
    jobs: int
    cost_usd: str
    standard_usd: str
    saved_usd: str = Field(description="standard_usd - cost_usd (negative: priority cost more).")
    saved_pct: float | None = Field(description="saved_usd in % of standard_usd; null at 0.")


class EstimationRow(BaseModel):
    model: str
    jobs: int = Field(description="Jobs with both an input-token estimate and a bill.")
    mean_abs_pct: float = Field(description="Mean absolute error of the estimate, in %.")
    worst_abs_pct: float


class SpendingReport(BaseModel):
    since: date = Field(description="The first UTC day counted.")
    until: date = Field(description="The last UTC day counted (today).")
    rows: list[SpendingRow] = Field(description="Sorted by day, model and tier.")
    totals: SpendingTotals
    estimation: list[EstimationRow] = Field(
        description="How far the input-token estimates were from the bills, per model."
    )
