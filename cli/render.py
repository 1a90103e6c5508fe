"""Human output of the user commands: tables, one-line summaries, progress."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, RenderableType, RenderResult
from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from visionq.client.models import Job
from visionq.vision.task_registry import rendering

_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "dim",
}
# Summaries shown whole (wrapped by the terminal), not cut to a width.
_WHOLE = 1_000_000


def summary(job: Job, width: int = 80) -> str:
    """One line saying what a job found, or why it did not finish."""
    if job.error is not None and job.status != "succeeded":
        text = f"{job.error.code}: {job.error.message}"
    elif job.result is None:
        text = ""
    elif rendering(job.task) == "objects":
        objects = job.result.get("objects", [])
        labels = ", ".join(str(obj.get("label", "")) for obj in objects)
        text = f"{len(objects)} object(s): {labels}" if objects else "no objects"
    elif rendering(job.task) == "label":
        text = str(job.result.get("label", ""))
    elif "json" in job.result:
        text = json.dumps(job.result["json"], ensure_ascii=False)
    else:
        text = str(job.result.get("text", ""))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def tier_text(job: Job) -> str:
    """A job's service tier in words: the tier asked, the lane it runs in (auto's choice),
    the tier Gemini served it at (or the cached job that answered it) and its deadline."""
    deadline = _when(job.deadline_at) if job.deadline_at is not None else "none"
    return f"tier {job.tier}, lane {job.lane}, {_served(job)}, deadline {deadline}"


def _served(job: Job) -> str:
    # A cache hit never calls Gemini (served_tier stays null): "served not yet" would be false.
    if job.cached_from is not None and job.done:
        return f"cached from {job.cached_from} (no charge)"
    if job.served_tier is not None:
        return f"served {job.served_tier}"
    return "no answer served" if job.done else "served not yet"


def tier_cell(job: Job) -> str:
    """The tier column of the jobs table: the tier asked, "→ lane" when auto chose (or the
    lane differs), and "(served ...)" when Gemini served another tier (a flex fallback, a
    priority downgrade, a batch job sent to standard)."""
    cell = job.tier if job.lane == job.tier else f"{job.tier}→{job.lane}"
    if job.served_tier is not None and job.served_tier != job.lane:
        cell += f" ({job.served_tier})"
    return cell


def _seconds(job: Job) -> str:
    if job.finished_at is None:
        return ""
    return f"{(job.finished_at - (job.started_at or job.created_at)).total_seconds():.1f}"


def status_text(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def results_view(jobs: Iterable[Job], names: dict[str, str] | None = None) -> Group:
    """Finished jobs, for `submit --wait`, `wait`, `retry --wait` and the demo: a heading
    line per job (full id, image, task, status, tokens, seconds), its tier line (tier asked,
    lane, tier served, deadline) and its whole answer below it, wrapped to the terminal.

    Not a table: a full id takes 36 columns, which at 80 columns leaves an answer column
    too narrow to read.
    """
    parts: list[RenderableType] = []
    for job in jobs:
        heading = Text(job.id, style="bold")
        if names is not None and names.get(job.id):
            heading.append(f"  {names[job.id]}")
        heading.append(f"  {job.task}  ")
        heading.append(job.status, style=_STATUS_STYLE.get(job.status, "white"))
        tokens, seconds = _tokens(job), _seconds(job)
        if tokens:
            heading.append(f"  {tokens} tokens")
        if seconds:
            heading.append(f"  {seconds} s")
        parts.append(heading)
        parts.append(Padding(Text(tier_text(job), style="dim"), (0, 0, 0, 4)))
        answer = summary(job, _WHOLE)
        if answer:
            parts.append(Padding(Text(answer, overflow="fold"), (0, 0, 0, 4)))
    return Group(*parts)


def _tokens(job: Job) -> str:
    tokens = job.usage.total_tokens if job.usage and job.usage.total_tokens else None
    return str(tokens or "")


def _when(moment: datetime) -> str:
    local = moment.astimezone()
    today = datetime.now(local.tzinfo).date() == local.date()
    return local.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M")


# The jobs table's columns in display order. A full id takes 36 columns, so at 80 not all
# fit: the first five always show (README promises pri and tier); the others join, most
# useful first (_OPTIONAL), where the terminal has room, and the caption names those left out.
_RESULT = "result / error"
_COLUMNS = ("id", "task", "status", "created", "tries", "pri", "tier", _RESULT)
_ALWAYS = ("id", "task", "status", "pri", "tier")
_OPTIONAL = (_RESULT, "created", "tries")
# Narrower than this an answer says too little: leave the column out and say so.
_RESULT_MIN = 20
# Between columns (collapsed padding: one space each side of an invisible rule).
_GAP = 2


def jobs_table(jobs: Sequence[Job]) -> RenderableType:
    """The listing of `visionq jobs` and `visionq status`: one line per job, its columns
    chosen for the width it is printed at."""
    return _JobsTable(list(jobs))


class _JobsTable:
    def __init__(self, jobs: list[Job]) -> None:
        self._jobs = jobs

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _fitted_table(self._jobs, options.max_width)


def _fitted_table(jobs: list[Job], width: int) -> Table:
    rows = [
        {"id": job.id, "task": job.task, "status": job.status, "created": _when(job.created_at),
         "tries": str(job.attempt_count), "pri": str(job.priority), "tier": tier_cell(job),
         _RESULT: summary(job, 200)}
        for job in jobs
    ]  # fmt: skip
    natural = {name: max([cell_len(name), *(cell_len(row[name]) for row in rows)])
               for name in _COLUMNS}  # fmt: skip
    needs = {**natural, _RESULT: min(natural[_RESULT], _RESULT_MIN)}
    shown = set(_ALWAYS)
    used = sum(needs[name] + _GAP for name in shown) - _GAP
    for name in _OPTIONAL:
        if used + _GAP + needs[name] <= width:
            shown.add(name)
            used += _GAP + needs[name]
    hidden = [name for name in _OPTIONAL if name not in shown]
    caption = f"left out at this width: {', '.join(hidden)}; a wider terminal shows them" + (
        " (or visionq result ID)" if _RESULT in hidden else ""
    )
    table = Table(
        box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False,
        collapse_padding=True, caption=caption if hidden else None, caption_justify="left",
        caption_style="dim",
    )  # fmt: skip
    for name in (name for name in _COLUMNS if name in shown):
        # The answer alone is cut (…) to what the other columns leave.
        room = width - used + needs[name] if name == _RESULT else None
        justify: JustifyMethod = "right" if name in ("tries", "pri") else "left"
        # The id is what users copy: never cut (the other columns give way).
        least = needs[name] if name == "id" else None
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis",
                         max_width=room, min_width=least)  # fmt: skip
    for row in rows:
        table.add_row(*(
            status_text(row[name]) if name == "status" else escape(row[name])
            for name in _COLUMNS if name in shown
        ))  # fmt: skip
    return table


def detections_table(job: Job) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for column in ("#", "label", "box [x1, y1, x2, y2]"):
        table.add_column(column)
    for index, obj in enumerate((job.result or {}).get("objects", [])):
        table.add_row(str(index), escape(str(obj.get("label", ""))), str(obj.get("box", "")))
    return table


class JobProgress:
    """A progress bar of finished jobs, fed by VisionqClient.wait's updates."""

    def __init__(self, console: Console, total: int, description: str = "jobs") -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, detail="")

    def __enter__(self) -> JobProgress:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def update(self, jobs: dict[str, Job]) -> None:
        counts: dict[str, int] = {}
        for job in jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        done = sum(1 for job in jobs.values() if job.done)
        detail = " ".join(f"{status}={count}" for status, count in sorted(counts.items()))
        self._progress.update(self._task, completed=done, detail=detail)
