"""Spending over finished jobs, grouped for `visionq cost report`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from visionq.models.tables import Job

GROUPINGS = ("model", "tenant", "task", "day", "tier")
# Ids per IN list when reading cache hits' sources (well under every database's limit).
_CHUNK = 500


@dataclass
class SpendRow:
    key: str
    jobs: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    cost_nusd: int = 0
    # The same usage priced at the standard tier: what the jobs would have cost there.
    standard_nusd: int = 0

    @property
    def saved_nusd(self) -> int:
        """What the tiers saved against standard prices (negative: priority cost more)."""
        return self.standard_nusd - self.cost_nusd

    @property
    def saved_pct(self) -> float | None:
        """Savings as a percentage of the standard price; None when nothing was billed."""
        if self.standard_nusd == 0:
            return None
        return 100.0 * self.saved_nusd / self.standard_nusd


# What the reports read of a job (not its result, prompt or inputs).
_REPORT_COLUMNS = (
    Job.id, Job.tenant, Job.task, Job.model, Job.finished_at, Job.served_tier,
    Job.cached_from, Job.prompt_tokens, Job.candidates_tokens, Job.thoughts_tokens,
    Job.cost_nusd, Job.standard_cost_nusd, Job.estimate, Job.usage,
)  # fmt: skip


def finished_jobs(
    session: Session, *, since: datetime | None, tenant: str | None = None
) -> list[Job]:
    """Jobs finished since ``since`` (all when None), of ``tenant`` (every tenant when None),
    oldest first, with only the columns the reports read."""
    query = (
        select(Job)
        .where(Job.finished_at.is_not(None))
        .options(load_only(*_REPORT_COLUMNS, raiseload=True))
        .order_by(Job.finished_at)
        .execution_options(yield_per=1000)
    )
    if since is not None:
        query = query.where(Job.finished_at >= since)
    if tenant is not None:
        query = query.where(Job.tenant == tenant)
    return list(session.scalars(query))


def cache_sources(session: Session, jobs: list[Job]) -> dict[str, int]:
    """What the answer each cache hit reused cost at standard prices: its source job's
    standard cost (its cost, for a source from before tiers were recorded), by source id.
    A source retention deleted is absent (its hits then count no saving)."""
    ids = sorted({job.cached_from for job in jobs if job.cached_from})
    found: dict[str, int] = {}
    for start in range(0, len(ids), _CHUNK):
        query = select(Job.id, Job.standard_cost_nusd, Job.cost_nusd).where(
            Job.id.in_(ids[start : start + _CHUNK])
        )
        for source_id, standard, cost in session.execute(query):
            found[source_id] = (cost or 0) if standard is None else standard
    return found


def tier_of(job: Job) -> str:
    """The tier a job was served at; "cached" for an answer reused for free, "unknown" for
    a job that ended with no served call (or finished before tiers were recorded)."""
    if job.served_tier:
        return job.served_tier
    return "cached" if job.cached_from else "unknown"


def _key(job: Job, by: str) -> str:
    assert job.finished_at is not None
    if by == "day":
        return job.finished_at.strftime("%Y-%m-%d")
    if by == "tier":
        return tier_of(job)
    return str(getattr(job, by))


def _add(row: SpendRow, job: Job, sources: Mapping[str, int] | None) -> None:
    """Count ``job`` in ``row``: a cache hit costs nothing; at standard it counts what its
    source's answer cost there (``sources``), or 0 when unknown: no saving claimed."""
    row.jobs += 1
    row.cached += 1 if job.cached_from else 0
    row.prompt_tokens += job.prompt_tokens or 0
    row.output_tokens += (job.candidates_tokens or 0) + (job.thoughts_tokens or 0)
    row.cost_nusd += job.cost_nusd or 0
    if job.cached_from:
        row.standard_nusd += (sources or {}).get(job.cached_from, 0)
        return
    # Jobs from before tiers were recorded ran at standard: their cost is the standard one.
    standard = job.standard_cost_nusd
    row.standard_nusd += (job.cost_nusd or 0) if standard is None else standard


def spend_by(jobs: list[Job], by: str, sources: Mapping[str, int] | None = None) -> list[SpendRow]:
    """Totals per model, tenant, task, day (UTC) or served tier of finished jobs.

    A cache hit costs nothing; at standard it counts what its source's answer cost there
    (``sources``, from :func:`cache_sources`): the call the cache saved. Without
    ``sources`` (or for a source no longer stored) it counts 0: no saving claimed."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}")
    rows: dict[str, SpendRow] = {}
    for job in jobs:
        key = _key(job, by)
        _add(rows.setdefault(key, SpendRow(key=key)), job, sources)
    return sorted(rows.values(), key=lambda row: row.key)


@dataclass
class SpendCell(SpendRow):
    """A SpendRow of one (day, model, served tier): what the API's spending report lists."""

    day: str = ""
    model: str = ""
    tier: str = ""


def spend_cells(jobs: list[Job], sources: Mapping[str, int] | None = None) -> list[SpendCell]:
    """Totals per (UTC day finished, model, served tier as :func:`tier_of`), sorted by them;
    counted as :func:`spend_by` counts."""
    cells: dict[tuple[str, str, str], SpendCell] = {}
    for job in jobs:
        day, model, tier = _key(job, "day"), job.model, tier_of(job)
        cell = cells.setdefault(
            (day, model, tier),
            SpendCell(key=f"{day}/{model}/{tier}", day=day, model=model, tier=tier),
        )
        _add(cell, job, sources)
    return [cells[key] for key in sorted(cells)]
