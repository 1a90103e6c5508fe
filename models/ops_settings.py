"""Settings of operations: Prometheus metrics and signed webhooks (issue 21).

A base class of the one :class:`visionq.models.settings.Settings` (kept in its own module so
settings.py stays readable); environment variables are ``VISIONQ_<FIELD>`` as everywhere.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from visionq.models.tier_settings import TierSettings

# Standard Webhooks' example schedule cut at 24 h: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (the
# last repeats until the retry window ends).
DEFAULT_WEBHOOK_RETRY_DELAYS_S: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
# A rotation's grace is at most a week (the API refuses longer).
MAX_ROTATION_GRACE_S = 7 * 86400
# A CORS origin: scheme://host[:port], nothing after (browsers send exactly this form).
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?")


class OpsSettings(TierSettings):
    """Metrics endpoints and webhook delivery; see README "Configuration"."""

    # API /metrics: empty = open; set = `Authorization: Bearer <token>` required (metric
    # labels carry tenant names).
    metrics_token: SecretStr | None = None
    # Cluster gauges (queue depth, budgets...) are computed at scrape and cached this long
    # per API process, so a fast scraper costs at most one query set per period.
    metrics_cache_s: float = Field(default=5.0, ge=0)
    # Each worker main process serves its metrics here (0 = off). Loopback by default: the
    # labels carry tenants and costs; compose sets 0.0.0.0 for its Prometheus container.
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # Base of the links in webhook payloads (e.g. https://visionq.example); empty = paths.
    public_url: str = ""
    # Workers run the webhook relay (fan-out, retries, dispatch).
    webhooks_enabled: bool = True
    webhook_poll_s: float = Field(default=1.0, gt=0)
    # One attempt, whole request (Standard Webhooks: 15-30 s).
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=300)
    # Deliveries sending at once per endpoint (1 while it is failing).
    webhook_max_in_flight: int = Field(default=8, ge=1, le=1000)
    # Delay after the n-th failed attempt (JSON list; the last repeats; +-20 % jitter).
    webhook_retry_delays_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_RETRY_DELAYS_S)
    )
    # A delivery is retried for this long from its first attempt (or its replay).
    webhook_retry_window_s: float = Field(default=86400.0, ge=60)
    # An endpoint failing this long with at least this many failed attempts in a row is
    # disabled (its pending deliveries are skipped; the tenant sees why).
    webhook_disable_after_s: float = Field(default=86400.0, ge=60)
    webhook_disable_min_failures: int = Field(default=10, ge=1)
    webhook_rotation_grace_s: int = Field(default=86400, ge=0, le=MAX_ROTATION_GRACE_S)
    # Results up to this many bytes (compact JSON) ride in the payload; 0 = never.
    webhook_result_max_bytes: int = Field(default=16384, ge=0, le=1024 * 1024)
    webhook_max_endpoints: int = Field(default=20, ge=1, le=1000)
    webhook_replay_max: int = Field(default=10_000, ge=1)
    # Refuse http:// endpoint and callback URLs (SSRF rules apply either way).
    webhook_require_https: bool = False

    # The web console at /console/ (api/console_files.py).
    console_enabled: bool = True
    # Origins other sites' pages may call the API from (CORS); empty = none (same origin
    # only; the console needs none). A JSON list or comma-separated, or "*".
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long a browser may cache a preflight's answer (Access-Control-Max-Age).
    cors_max_age_s: int = Field(default=600, ge=0, le=86400)

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise ValueError(
                        "VISIONQ_CORS_ALLOW_ORIGINS: a JSON list of origins, or origins "
                        f"separated by commas: {exc}"
                    ) from exc
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _origins_valid(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"VISIONQ_CORS_ALLOW_ORIGINS: {origin!r} is not an origin; give "
                    "scheme://host[:port] without a path or a trailing slash (e.g. "
                    "https://ui.example.com), or *"
                )
        return value

    @field_validator("webhook_retry_delays_s", mode="before")
    @classmethod
    def _parse_delays(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else list(DEFAULT_WEBHOOK_RETRY_DELAYS_S)
            except ValueError as exc:
                raise ValueError(
                    "VISIONQ_WEBHOOK_RETRY_DELAYS_S must be a JSON list of seconds such as "
                    f"[5, 300, 1800], or empty for the default: {exc}"
                ) from exc
        return value

    @field_validator("webhook_retry_delays_s")
    @classmethod
    def _delays_positive(cls, value: list[float]) -> list[float]:
        if not value or any(delay <= 0 for delay in value):
            raise ValueError(
                "VISIONQ_WEBHOOK_RETRY_DELAYS_S needs at least one delay, each above 0 s"
            )
        return value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token(cls, value: object) -> object:
        # compose passes `${VISIONQ_METRICS_TOKEN:-}`: empty means no token (open).
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_public_url(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _webhook_bounds(self) -> OpsSettings:
        longest = max(self.webhook_retry_delays_s)
        if self.webhook_retry_window_s < longest:
            raise ValueError(
                f"VISIONQ_WEBHOOK_RETRY_WINDOW_S ({self.webhook_retry_window_s:g}) must be at "
                f"least the longest of VISIONQ_WEBHOOK_RETRY_DELAYS_S ({longest:g}): raise the "
                "window or shorten the delays"
            )
        return self

    def metrics_token_value(self) -> str | None:
        """The /metrics bearer token in clear text (None: /metrics is open)."""
        return self.metrics_token.get_secret_value() if self.metrics_token else None
