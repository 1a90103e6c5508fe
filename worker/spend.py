"""What a job's Gemini calls cost, priced at the rate of the model that answered."""

from __future__ import annotations

from dataclasses import dataclass, field

from visionq.models.outcomes import Usage
from visionq.vision.costing import to_nano
from visionq.worker.answers import routed_model
from visionq.worker.context import WorkerContext


@dataclass
class Spend:
    """Tokens and money of every Gemini call a job made (each attempt records its own), how
    its images were last sent (inline or File API), and the max_output_tokens sent last."""

    usage: Usage | None = None
    cost_nusd: int | None = None
    last_call_nusd: int | None = None
    transports: list[str] = field(default_factory=list)
    output_cap: int | None = None
    # Warnings of the run (code -> message), added to the job's when it ends.
    warnings: dict[str, str] = field(default_factory=dict)

    def add(
        self, ctx: WorkerContext, model: str, call: Usage | None, served: str | None = None
    ) -> None:
        """Count one call's usage, priced at the rate of the model that answered it."""
        self.last_call_nusd = None
        routed = routed_model(model, served)
        if routed is not None:
            self.warnings["model_routed"] = _routed_message(ctx, model, routed, call)
        if call is None:
            return
        self.usage = call.plus(self.usage)
        # Google bills a routed call at the served model's price; ours when it has none.
        cost = ctx.costs.call_cost(routed, call.raw) if routed is not None else None
        if cost is None:
            cost = ctx.costs.call_cost(model, call.raw)
        if cost is not None:
            self.last_call_nusd = to_nano(cost)
            self.cost_nusd = (self.cost_nusd or 0) + self.last_call_nusd


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
