"""Settings of the service tiers and the Gemini Batch lane (issue 20).

A base class of the one :class:`visionq.models.settings.Settings` (kept in its own module so
settings.py stays readable); environment variables are ``VISIONQ_<FIELD>`` as everywhere.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from visionq.vision.catalogue import ServiceTier

TierName = Literal["standard", "flex", "priority", "batch", "auto"]

# Default deadline per requested tier (seconds from submit).
DEFAULT_TIER_DEADLINES_S: dict[str, float] = {
    "standard": 1800.0,
    "priority": 1800.0,
    "flex": 3600.0,
    "batch": 86400.0,
    "auto": 7200.0,
}
# Turnaround assumed for a tier until enough jobs were measured: Google's targets
# (flex 1-15 min, batch up to 24 h).
DEFAULT_TIER_PRIOR_S: dict[ServiceTier, float] = {
    ServiceTier.STANDARD: 60.0,
    ServiceTier.PRIORITY: 30.0,
    ServiceTier.FLEX: 900.0,
    ServiceTier.BATCH: 86400.0,
}
# Gemini keeps an uploaded file this long (File API).
GEMINI_FILE_LIFETIME_S = 48 * 3600.0
# Gemini runs at most 100 batches at once per project.
GEMINI_MAX_RUNNING_BATCHES = 100


def _json_object(name: str, value: object) -> object:
    """An env value as JSON (empty = {}); other values as given."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return {}
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ValueError(
            f'VISIONQ_{name.upper()} must be a JSON object such as {{"flex": 3600}}, or empty: '
            f"{exc}"
        ) from exc


class TierSettings(BaseSettings):
    """Tier choice, flex calls and the batch lane; see README "Configuration"."""

    # Tier of a job that names none (options.tier).
    tier_default: TierName = "standard"
    # Deadline per tier when a job gives no deadline_s, JSON (keys: the five tiers; the ones
    # given replace the defaults, the others stay).
    tier_deadlines_s: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_DEADLINES_S)
    )
    # Turnaround assumed per tier until tier_min_samples jobs were measured, JSON.
    tier_prior_s: Annotated[dict[ServiceTier, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_PRIOR_S)
    )
    # `auto` picks a tier when its measured p90 turnaround times this fits the deadline.
    tier_safety: float = Field(default=1.5, ge=1.0)
    tier_min_samples: int = Field(default=20, ge=1)
    tier_window_s: float = Field(default=6 * 3600.0, gt=0)

    # Flex calls: the longest one call may take (at most job_deadline_s - lease_s; when not
    # set, 900 s or that bound if smaller), time kept in reserve before the deadline for the
    # fallback to standard, and at most this many sheds (503s) before falling back.
    flex_timeout_s: float = Field(default=900.0, gt=0)
    flex_reserve_s: float = Field(default=300.0, ge=0)
    flex_max_sheds: int = Field(default=10, ge=0)

    # The Gemini Batch lane (worker/batch_lane.py), one per worker main process.
    batch_lane_enabled: bool = True
    batch_poll_s: float = Field(default=30.0, gt=0)
    batch_gather_s: float = Field(default=120.0, ge=0)
    batch_min_requests: int = Field(default=100, ge=1)
    batch_max_requests: int = Field(default=1000, ge=1)
    batch_inline_max_bytes: int = Field(default=19_000_000, ge=64 * 1024, le=20_000_000)
    batch_file_image_min_bytes: int = Field(default=256 * 1024, ge=0)
    # A file a batch refers to must outlive the batch (up to 24 h, expired after 48 h):
    # an upload with less than this left before its expiry is uploaded again.
    batch_file_margin_s: float = Field(default=26 * 3600.0, gt=0, lt=GEMINI_FILE_LIFETIME_S)
    batch_max_running: int = Field(default=50, ge=1, le=GEMINI_MAX_RUNNING_BATCHES)
    batch_stall_s: float = Field(default=3600.0, gt=0)
    batch_create_grace_s: float = Field(default=120.0, ge=0)
    batch_sync_reserve_s: float = Field(default=600.0, ge=0)
    batch_reconcile_s: float = Field(default=300.0, gt=0)
    batch_max_resends: int = Field(default=2, ge=0)
    batch_name_prefix: str = Field(default="visionq-", min_length=1, max_length=64)
    batch_orphans: Literal["cancel", "adopt"] = "cancel"
    batch_delete_done: bool = True

    @field_validator("tier_deadlines_s", mode="before")
    @classmethod
    def _parse_deadlines(cls, value: object) -> object:
        parsed = _json_object("tier_deadlines_s", value)
        if not isinstance(parsed, dict):
            return parsed  # pydantic names the wrong type
        unknown = sorted(set(parsed) - set(DEFAULT_TIER_DEADLINES_S))
        if unknown:
            raise ValueError(
                f"VISIONQ_TIER_DEADLINES_S: unknown tier(s) {', '.join(unknown)}; use "
                f"{', '.join(DEFAULT_TIER_DEADLINES_S)}"
            )
        return {**DEFAULT_TIER_DEADLINES_S, **parsed}

    @field_validator("tier_prior_s", mode="before")
    @classmethod
    def _parse_priors(cls, value: object) -> object:
        parsed = _json_object("tier_prior_s", value)
        if not isinstance(parsed, dict):
            return parsed
        known = {tier.value for tier in ServiceTier}
        unknown = sorted(str(key) for key in parsed if str(key) not in known)
        if unknown:
            raise ValueError(
                f"VISIONQ_TIER_PRIOR_S: unknown tier(s) {', '.join(unknown)}; use "
                f"{', '.join(sorted(known))}"
            )
        return {**DEFAULT_TIER_PRIOR_S, **{ServiceTier(str(k)): v for k, v in parsed.items()}}

    @field_validator("tier_deadlines_s", "tier_prior_s")
    @classmethod
    def _positive(cls, value: dict[Any, float]) -> dict[Any, float]:
        bad = [f"{key}={seconds:g}" for key, seconds in value.items() if seconds <= 0]
        if bad:
            raise ValueError(f"tier seconds must be above 0: {', '.join(bad)}")
        return value

    def check_flex_bound(self, *, job_deadline_s: float, lease_s: float) -> None:
        """Hold flex_timeout_s to job_deadline_s - lease_s: a longer flex call would outlive
        the job's run and be killed by the process watchdog. Unset, it is lowered to fit;
        set explicitly too high, it is an error naming the bound."""
        bound = job_deadline_s - lease_s
        if self.flex_timeout_s <= bound:
            return
        if "flex_timeout_s" in self.model_fields_set:
            raise ValueError(
                f"VISIONQ_FLEX_TIMEOUT_S ({self.flex_timeout_s:g}) must be at most "
                f"VISIONQ_JOB_DEADLINE_S - VISIONQ_LEASE_S = {bound:g}: lower it or raise "
                "the job deadline"
            )
        # A tiny test deadline leaves no room: half the deadline then (no flex run fits).
        self.flex_timeout_s = max(bound, job_deadline_s / 2)

    def check_batch_bounds(self) -> None:
        """Cross-field rules of the batch lane (each message says what to change)."""
        if self.batch_min_requests > self.batch_max_requests:
            raise ValueError(
                f"VISIONQ_BATCH_MIN_REQUESTS ({self.batch_min_requests}) must not exceed "
                f"VISIONQ_BATCH_MAX_REQUESTS ({self.batch_max_requests})"
            )
