"""What a job's Gemini calls cost, priced at the rate of the model and tier that answered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from google.genai import types
from pydantic import ValidationError

from visionq.models.leases import JobSpec
from visionq.models.metrics import COST_USD, GEMINI_TOKENS, model_label
from visionq.models.outcomes import RecordedCall, Usage
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import from_nano, reservation_nusd, to_nano
from visionq.vision.tasks import TaskKind
from visionq.worker.answers import routed_model, usage_from_metadata
from visionq.worker.context import WorkerContext


@dataclass
class Spend:
    """Tokens and money of every Gemini call a job made (each attempt records its own), how
    its images were last sent (inline or File API), and the max_output_tokens sent last.
    A paid call counts in the metrics (tokens; cost for ``tenant``) when the attempt that
    records it has committed (:meth:`count_recorded`), not when it is added: a batch line
    stored again after a database fault, or handled again on the crash path, adds its
    call to a new Spend each time but is recorded, and so counted, once.

    Each call is billed at the tier that served it; ``standard_nusd`` is the same usage at
    the standard price (what the job would have cost there: the savings, without
    recomputation)."""

    usage: Usage | None = None
    cost_nusd: int | None = None
    # The job's tenant: the label of its calls' cost in visionq_cost_usd_total.
    tenant: str = ""
    last_call_nusd: int | None = None
    # The usage_metadata of the last call (its attempt records it) and the tier it was
    # served at (None when it carried no usage: refused, timed out or shed).
    last_usage: dict[str, Any] | None = None
    served_tier: str | None = None
    standard_nusd: int | None = None
    last_standard_nusd: int | None = None
    # The tier the last call asked for (None: as the attempt was opened, e.g. by a batch).
    requested_tier: str | None = None
    transports: list[str] = field(default_factory=list)
    output_cap: int | None = None
    # Warnings of the run (code -> message), added to the job's when it ends.
    warnings: dict[str, str] = field(default_factory=dict)
    # Calls added but not yet counted in the metrics (their attempt not yet committed).
    uncounted: list[PaidCall] = field(default_factory=list)

    def add(
        self,
        ctx: WorkerContext,
        model: str,
        call: Usage | None,
        served: str | None = None,
        *,
        tier: ServiceTier = ServiceTier.STANDARD,
    ) -> None:
        """Count one call's usage, priced at the rate of the model and the tier that
        answered it (``served``: the model Gemini names; ``tier``: the tier it served at)."""
        self.last_call_nusd = self.last_standard_nusd = None
        self.last_usage = call.raw if call is not None else None
        # A call with no usage (refused, timed out, shed) was not served at any tier.
        self.served_tier = tier.value if call is not None else None
        routed = routed_model(model, served)
        if routed is not None:
            self.warnings["model_routed"] = _routed_message(ctx, model, routed, call)
        if call is None:
            return
        self.usage = call.plus(self.usage)
        cost = _call_nusd(ctx, model, routed, call, tier)
        self.uncounted.append(PaidCall(routed or model, tier, call, cost))
        if cost is not None:
            self.last_call_nusd = cost
            self.cost_nusd = (self.cost_nusd or 0) + cost
        standard = (
            cost
            if tier is ServiceTier.STANDARD
            else _call_nusd(ctx, model, routed, call, ServiceTier.STANDARD)
        )
        if standard is not None:
            self.last_standard_nusd = standard
            self.standard_nusd = (self.standard_nusd or 0) + standard

    def count_recorded(self) -> None:
        """The calls added so far are recorded (the transaction writing their attempt
        committed): count them in the metrics, once. Call it after the commit only."""
        calls, self.uncounted[:] = list(self.uncounted), []
        for paid in calls:
            _count_call(self.tenant, paid)

    def next_attempt(self) -> None:
        """A new attempt opened: its record starts with no call (the last one is on the
        attempt just closed, and must not be recorded twice)."""
        self.last_call_nusd = self.last_standard_nusd = None
        self.last_usage = None
        self.served_tier = None

    def with_earlier(self, ctx: WorkerContext, calls: Sequence[RecordedCall]) -> Spend:
        """The job's totals when its run ends: the calls recorded on its other attempts
        (``calls``: earlier attempts of this run, of a run before a crash, of the Gemini
        batches it left) plus this attempt's last call. A job's cost is the sum of its
        attempts' costs, whichever lane ran them. Without earlier calls: this Spend."""
        if not calls:
            return self
        usage: Usage | None = None
        cost: int | None = None
        standard: int | None = None
        for call in calls:
            recorded = _usage_of(call.usage)
            usage = recorded.plus(usage) if recorded is not None else usage
            if call.cost_nusd is not None:
                cost = (cost or 0) + call.cost_nusd
            priced = (
                _call_nusd(ctx, call.model, None, recorded, ServiceTier.STANDARD)
                if recorded is not None
                else None
            )
            if priced is not None:
                standard = (standard or 0) + priced
        last = _usage_of(self.last_usage)
        usage = last.plus(usage) if last is not None else usage
        if self.last_call_nusd is not None:
            cost = (cost or 0) + self.last_call_nusd
        if self.last_standard_nusd is not None:
            standard = (standard or 0) + self.last_standard_nusd
        return replace(self, usage=usage, cost_nusd=cost, standard_nusd=standard)


@dataclass(frozen=True)
class PaidCall:
    """One paid call as the metrics count it: the model that answered (priced), the tier
    it was served at, its usage, and its cost (None: no known price)."""

    model: str
    tier: ServiceTier
    usage: Usage
    cost_nusd: int | None


def _count_call(tenant: str, paid: PaidCall) -> None:
    """One paid call in the metrics: its tokens by kind, and its cost (when priced)."""
    label, tier, call, cost = model_label(paid.model), paid.tier, paid.usage, paid.cost_nusd
    kinds = (("input", call.prompt_tokens), ("output", call.candidates_tokens),
             ("thinking", call.thoughts_tokens), ("cached", call.cached_tokens))  # fmt: skip
    for kind, tokens in kinds:
        if tokens:
            GEMINI_TOKENS.labels(label, tier.value, kind).inc(tokens)
    if cost is not None:
        COST_USD.labels(tenant, label, tier.value).inc(float(from_nano(cost)))


def _usage_of(raw: dict[str, Any] | None) -> Usage | None:
    """A recorded usage_metadata as our Usage (None when absent or unreadable)."""
    if not raw:
        return None
    try:
        metadata = types.GenerateContentResponseUsageMetadata.model_validate(raw)
    except ValidationError:
        return None
    return usage_from_metadata(metadata)


def standard_surcharge_nusd(ctx: WorkerContext, job: JobSpec) -> int:
    """How much more the job may cost at standard than its hold at the lane's price (its
    stored estimate's): what a fallback from flex to standard must hold on top."""
    held = reservation_nusd(job.estimate) if job.estimate is not None else 0
    standard = ctx.costs.estimate(
        task=TaskKind(job.task), model=job.model, prompt=job.prompt, labels=job.labels,
        options=job.options, sizes=[(item.width, item.height) for item in job.inputs],
        tier=ServiceTier.STANDARD,
    )  # fmt: skip
    return max(0, reservation_nusd(standard) - held) if standard.cost_usd is not None else 0


def _call_nusd(
    ctx: WorkerContext, model: str, routed: str | None, call: Usage, tier: ServiceTier
) -> int | None:
    """One call's cost at ``tier``; Google bills a routed call at the served model's price
    (ours when it has none)."""
    cost = ctx.costs.call_cost(routed, call.raw, tier=tier) if routed is not None else None
    if cost is None:
        cost = ctx.costs.call_cost(model, call.raw, tier=tier)
    return to_nano(cost) if cost is not None else None


def _routed_message(ctx: WorkerContext, asked: str, served: str, call: Usage | None) -> str:
    """The ``model_routed`` warning: who answered, and at which rate the call is priced."""
    usage = call.raw if call is not None else {}
    if ctx.costs.call_cost(served, usage) is not None:
        priced = f"the call is priced at {served}'s rate"
    elif ctx.costs.call_cost(asked, usage) is not None:
        priced = (
            f"{served} has no known price, so the call is priced at {asked}'s rate; add "
            f"{served} to the model catalogue (VISIONQ_MODELS_FILE)"
        )
    else:
        priced = f"neither has a known price; add {served} to the model catalogue"
    return (
        f"Gemini answered with {served}, not the {asked} the job asked for (Google routes "
        f"retired models to a successor); {priced}. Submit with a current model to choose "
        "it yourself."
    )
