"""Spending over finished jobs, grouped for `visionq cost report`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, load_only

from visionq.models.tables import Job
from visionq.vision.calibration import Observation, observation_of

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
        _add_to_cell(cells, job, sources)
    return [cells[key] for key in sorted(cells)]


def _add_to_cell(
    cells: dict[tuple[str, str, str], SpendCell], job: Job, sources: Mapping[str, int] | None
) -> None:
    """Count ``job`` into its (UTC day finished, model, served tier) cell, made on first use."""
    day, model, tier = _key(job, "day"), job.model, tier_of(job)
    cell = cells.setdefault(
        (day, model, tier),
        SpendCell(key=f"{day}/{model}/{tier}", day=day, model=model, tier=tier),
    )
    _add(cell, job, sources)


# Finished jobs read per query by :func:`spending`: its memory is bounded by this, not by
# the number of jobs in the window.
SPENDING_PAGE = 1000


@dataclass
class _Errors:
    """A model's input-token estimate errors in %, kept as an exact sum, the largest and the
    count: the same mean as :func:`vision.calibration.accuracy` (statistics.mean sums floats
    exactly) without holding every job."""

    jobs: int = 0
    total: Fraction = field(default_factory=Fraction)
    worst: float = 0.0


@dataclass(frozen=True)
class Spending:
    """A tenant's spending report: per (day, model, served tier) cells, their total, and the
    estimate error per model as (model, jobs, mean %, worst %) sorted by model."""

    cells: list[SpendCell]
    total: SpendRow
    estimation: list[tuple[str, int, float, float]]


def _finished_pages(
    session: Session, *, since: datetime, tenant: str, page: int
) -> Iterator[list[Job]]:
    """The tenant's jobs finished since ``since`` as :func:`finished_jobs` reads them, a
    keyset page on (finished_at, id) per query: no cursor stays open between pages."""
    query = (
        select(Job)
        .where(Job.finished_at.is_not(None), Job.finished_at >= since, Job.tenant == tenant)
        .options(load_only(*_REPORT_COLUMNS, raiseload=True))
        .order_by(Job.finished_at, Job.id)
        .limit(page)
    )
    after: tuple[datetime, str] | None = None
    while True:
        paged = query
        if after is not None:
            finished, job_id = after
            paged = query.where(
                or_(Job.finished_at > finished, and_(Job.finished_at == finished, Job.id > job_id))
            )
        jobs = list(session.scalars(paged))
        if not jobs:
            return
        yield jobs
        last = jobs[-1]
        assert last.finished_at is not None
        after = (last.finished_at, last.id)


def spending(
    session: Session, *, since: datetime, tenant: str, page: int = SPENDING_PAGE
) -> Spending:
    """``tenant``'s jobs finished since ``since`` counted as `visionq cost report` counts
    them (:func:`spend_cells`, :func:`spend_by`'s total, the estimate errors of
    vision.calibration.accuracy), reading ``page`` jobs at a time."""
    cells: dict[tuple[str, str, str], SpendCell] = {}
    total = SpendRow(key="total")
    errors: dict[str, _Errors] = {}
    for jobs in _finished_pages(session, since=since, tenant=tenant, page=page):
        sources = cache_sources(session, jobs)
        for job in jobs:
            _add_to_cell(cells, job, sources)
            _add(total, job, sources)
            if not job.cached_from:
                _count_error(errors, observation_of(job.model, job.estimate, job.usage))
    return Spending(
        cells=[cells[key] for key in sorted(cells)],
        total=total,
        estimation=[
            (model, found.jobs, float(found.total / found.jobs), found.worst)
            for model, found in sorted(errors.items())
        ],
    )


def _count_error(errors: dict[str, _Errors], seen: Observation) -> None:
    """Add one job's estimate error, as vision.calibration.accuracy computes it."""
    if not (seen.estimated_input and seen.billed_input):
        return
    error = abs(seen.estimated_input - seen.billed_input) / seen.billed_input * 100
    found = errors.setdefault(seen.model, _Errors())
    found.jobs += 1
    found.total += Fraction(error)
    found.worst = max(found.worst, error)
