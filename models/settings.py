"""Runtime configuration: one pydantic-settings class, built on demand.

It lives in models/ because that is the lowest layer that both api/ and worker/ import;
nothing here is read at import time: call :func:`get_settings` where a process starts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    InstanceOf,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from visionq.models.ops_settings import OpsSettings
from visionq.models.ratelimits import ModelQuota, parse_quotas
from visionq.models.weights import parse_weights

# Versions of the Gemini API whose requests visionq builds (tests/contract checks them).
SUPPORTED_API_VERSIONS = ("v1beta",)


class ConfigurationError(ValueError):
    """A setting cannot be used as given (a file it names, a replaced variable); the message
    says which and what to do."""


def default_data_dir() -> Path:
    """Where the SQLite database and blob store live unless configured otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "visionq"


class Settings(OpsSettings):
    """All visionq settings; environment variables are ``VISIONQ_<FIELD>``.

    The service tier and batch lane settings are declared in models/tier_settings.py, the
    metrics and webhook settings in models/ops_settings.py."""

    model_config = SettingsConfigDict(env_prefix="VISIONQ_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    blob_dir: str = ""
    # Given as they are to fsspec's file system for blob_dir (JSON object, e.g.
    # {"endpoint_url": "http://minio:9000"}); credentials may come from its usual env instead.
    # repr=False: it may hold credentials (redacted() shows them as "set").
    blob_storage_options: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, repr=False
    )

    gemini_base_url: str = ""
    # visionq needs v1beta: the public v1 has no File API, no thinkingConfig and no JSON
    # output (responseMimeType), so detect, segment, custom and large images would fail.
    gemini_api_version: str = "v1beta"
    # Same variables and precedence as the google-genai SDK: GOOGLE_API_KEY wins.
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GOOGLE_API_KEY", "GEMINI_API_KEY")
    )
    gemini_timeout_s: float = Field(default=120.0, gt=0)
    # Empty: the model catalogue's default (its segmentation default for segment jobs).
    default_model: str = ""
    # Jobs may name models the catalogue does not know (no estimate, price or checks).
    allow_unknown_models: bool = False

    # Inline bytes while the whole request stays under this; larger go via the File API.
    inline_limit_bytes: int = Field(default=20 * 1024 * 1024, ge=64 * 1024)
    # An uploaded file this close to its 48 h expiry is uploaded again instead of reused.
    file_expiry_margin_s: float = Field(default=3600.0, ge=0)
    file_active_timeout_s: float = Field(default=300.0, gt=0)
    # An upload claimed this long ago without finishing belongs to a dead worker.
    file_upload_stale_s: float = Field(default=600.0, gt=0)

    # A JSON file overriding or extending the packaged model catalogue
    # (vision/data/models.json format): models, prices, token and thinking rules, aliases.
    models_file: Path | None = None

    max_images_per_job: int = Field(default=16, ge=1, le=3600)
    max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_request_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=120_000_000, ge=1)
    # Memory for decoding images (vision/memory.py), per process (API and each worker): an
    # image whose decode would take more than the per-image bound is refused (413); decodes
    # running at once hold at most the budget; a decode waits at most the wait for its
    # share (then the API answers 503 with Retry-After).
    image_decode_max_bytes: int = Field(default=256 * 1024 * 1024, ge=16 * 1024 * 1024)
    image_decode_budget_bytes: int = Field(default=256 * 1024 * 1024, ge=16 * 1024 * 1024)
    image_decode_wait_s: float = Field(default=10.0, gt=0)
    # At least 100: VisionqClient.wait() asks for 100 ids per GET /v1/jobs?ids=, which a
    # smaller maximum would refuse (422).
    page_size_max: int = Field(default=200, ge=100)

    # Retries of Gemini calls (worker/retry.py): attempts per job, full-jitter exponential
    # backoff between them, and a deadline for the whole job from its first start.
    max_attempts: int = Field(default=6, ge=1, le=100)
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_max_delay_s: float = Field(default=60.0, gt=0)
    job_deadline_s: float = Field(default=1800.0, gt=0)
    # Shared Gemini rate limits per model, e.g. {"gemini-3.6-flash": {"rpm": 1000, "tpm":
    # 1000000}, "*": {"usd": 10}} (JSON in VISIONQ_RATE_LIMITS): requests, input tokens and
    # estimated dollars per window ("window_s", default rate_window_s, 600 s for usd); "*"
    # is all models together; models not listed are paced by "*" only (worker/ratelimit.py).
    # Read as JSON and parsed once into typed quotas by _parse_rate_limits, so an empty
    # value (compose's `${VAR:-}`) means {}; the worker's limiter takes them as they are.
    rate_limits: Annotated[dict[str, InstanceOf[ModelQuota]], NoDecode] = Field(
        default_factory=dict
    )
    rate_window_s: float = Field(default=60.0, gt=0)
    # Seconds added to each limiter window for the delay between admission and the request
    # reaching Gemini (utilisation ceiling window / (window + margin)); learn: 429s lower the
    # limits used, shared by all workers, recovered after quiet windows (worker/quota_learn.py).
    rate_margin_s: float = Field(default=0.5, ge=0)
    rate_learn: bool = True

    # Delivery (models/leases.py, worker/sweeper.py): a running job's lease, renewed by its
    # worker; when it lapses (the worker died) the job is delivered again, at most
    # max_deliveries times. The sweeper also sends jobs whose message never reached Redis.
    lease_s: float = Field(default=90.0, ge=1)
    max_deliveries: int = Field(default=3, ge=1)
    sweeper_enabled: bool = True
    # /readyz needs a worker heartbeat (worker/heartbeat.py) at most this old; workers beat
    # every third of it.
    worker_heartbeat_s: float = Field(default=30.0, gt=0)
    sweep_interval_s: float = Field(default=15.0, gt=0)
    requeue_after_s: float = Field(default=900.0, gt=0)
    # Fair share (models/fairqueue.py): free slots go to tenants by weight (JSON object, e.g.
    # {"acme": 2}; 1.0 when not named), each tenant's jobs by priority 0..9 (9 first). Off:
    # one FIFO queue, priorities stored but not used.
    fair_share: bool = True
    tenant_weights: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    default_priority: int = Field(default=5, ge=0, le=9)
    # Redis gives an unacknowledged message to another worker after this long; it must
    # outlast any job (deadline plus one call), or a slow job would run twice.
    broker_visibility_timeout_s: float = Field(default=7200.0, gt=0)
    # Storage faults: a SQLite write at submit waits api_db_busy_timeout_s for another
    # process's lock, then the API answers 503; a worker's waits db_busy_timeout_s, then
    # retries (worker/storing.py). Temporary blob files older than blob_tmp_grace_s (left
    # by a killed process) are deleted by the sweeper.
    api_db_busy_timeout_s: float = Field(default=5.0, ge=0)
    db_busy_timeout_s: float = Field(default=30.0, ge=0)
    blob_tmp_grace_s: float = Field(default=600.0, gt=0)

    # Abuse limits per API key / tenant.
    submit_rate_per_s: float = Field(default=50.0, ge=0, description="0 = no limit")
    submit_burst: int = Field(default=200, ge=1)
    max_active_jobs_per_tenant: int = Field(default=100_000, ge=1)
    idempotency_ttl_s: float = Field(default=48 * 3600.0, ge=24 * 3600.0)

    # Slow and excess HTTP clients (api/server.py): headers must arrive within
    # header_timeout_s; a body may pause at most body_timeout_s and must average
    # body_min_bytes_per_s after that grace (0 = no rate), and a response may go unread at
    # most body_timeout_s; open connections per client IP
    # per API process (0 = no cap; behind a proxy every client shares its address).
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    body_min_bytes_per_s: float = Field(default=4096.0, ge=0)
    max_connections_per_client: int = Field(default=100, ge=0)

    # Images given by URL: fetched by the API, size and time capped; only public addresses
    # unless an operator allows networks here (CIDRs, e.g. an internal image host).
    url_fetch_timeout_s: float = Field(default=20.0, gt=0)
    url_fetch_max_redirects: int = Field(default=3, ge=0)
    url_fetch_allowed_networks: list[str] = Field(default_factory=list)

    # Batches (issue 19): items one add call may carry; threads of the API process checking
    # and storing a call's images; how far back the ETA's measured rate looks; rows per
    # database page of an export (each page is its own short read).
    batch_max_items_per_add: int = Field(default=500, ge=1, le=5000)
    batch_intake_threads: int = Field(default=4, ge=1, le=64)
    batch_eta_window_s: float = Field(default=300.0, gt=0)
    batch_export_page: int = Field(default=1000, ge=10, le=10_000)

    # Retention (models/retention.py, `visionq gc`): finished jobs older than this many days
    # are deleted with their inputs, attempts and masks; 0 keeps them forever.
    retention_days: int = Field(default=30, ge=0)
    # Log lines of every process (models/logs.py): "text" for people, "json" for collectors.
    log_format: Literal["text", "json"] = "text"

    @field_validator("blob_storage_options", mode="before")
    @classmethod
    def _parse_storage_options(cls, value: object) -> object:
        problem = "got " + type(value).__name__
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
                problem = "got JSON " + type(value).__name__
            except ValueError as exc:
                problem = str(exc)
        if not isinstance(value, dict):
            raise ValueError(
                'VISIONQ_BLOB_STORAGE_OPTIONS must be a JSON object such as {"endpoint_url": '
                f'"http://minio:9000"}}, or empty: {problem}'
            )
        return value

    @field_validator("tenant_weights", mode="before")
    @classmethod
    def _parse_tenant_weights(cls, value: object) -> object:
        return parse_weights(value)

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _parse_rate_limits(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(
                    'VISIONQ_RATE_LIMITS must be a JSON object such as {"*": {"rpm": 100}}, or '
                    f"empty: {exc}"
                ) from exc
        if isinstance(value, dict) and all(isinstance(q, ModelQuota) for q in value.values()):
            return value  # already parsed (a copy of loaded settings)
        # The limiter's own rules (models/ratelimits.py), checked once when settings load.
        return parse_quotas(value)  # type: ignore[arg-type]  # non-objects: its own message

    @field_serializer("rate_limits")
    def _show_rate_limits(
        self, value: dict[str, ModelQuota]
    ) -> dict[str, dict[str, int | float | str]]:
        # `visionq config` prints JSON: each quota as VISIONQ_RATE_LIMITS spells it.
        return {model: quota.as_json() for model, quota in value.items()}

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("url_fetch_allowed_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a network (CIDR such as 10.0.0.0/8): {cidr!r}") from exc
        return value

    @field_validator("gemini_api_version")
    @classmethod
    def _supported_api_version(cls, value: str) -> str:
        version = value.strip()
        if version not in SUPPORTED_API_VERSIONS:
            raise ValueError(
                f"Gemini API version {value!r} is not supported: visionq needs "
                f"{' or '.join(SUPPORTED_API_VERSIONS)} (v1 has no File API, thinkingConfig or "
                "responseMimeType)"
            )
        return version

    @field_validator("gemini_base_url")
    @classmethod
    def _strip_base_url(cls, value: str) -> str:
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _delivery_bounds(self) -> Settings:
        longest = self.job_deadline_s + self.gemini_timeout_s + self.lease_s
        if self.broker_visibility_timeout_s <= longest:
            raise ValueError(
                f"VISIONQ_BROKER_VISIBILITY_TIMEOUT_S ({self.broker_visibility_timeout_s:g}) must "
                f"exceed the longest a job can hold its message: job_deadline_s + "
                f"gemini_timeout_s + lease_s = {longest:g}"
            )
        if self.retry_max_delay_s >= self.job_deadline_s:
            raise ValueError("VISIONQ_RETRY_MAX_DELAY_S must be below VISIONQ_JOB_DEADLINE_S")
        self.check_flex_bound(job_deadline_s=self.job_deadline_s, lease_s=self.lease_s)
        self.check_batch_bounds()
        return self

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'visionq.db'}"
        if not self.blob_dir:
            self.blob_dir = str(self.data_dir / "blobs")
        return self

    def catalogue_override(self) -> dict[str, Any] | None:
        """The model catalogue override read from VISIONQ_MODELS_FILE (None when unset)."""
        return _read_json(self.models_file)

    def gemini_key(self) -> str | None:
        """The Gemini API key in clear text, for the SDK only; never log it."""
        return self.gemini_api_key.get_secret_value() if self.gemini_api_key else None

    def redacted(self) -> dict[str, object]:
        """Settings safe to print: secrets and URL passwords hidden."""
        shown = self.model_dump(mode="json", exclude={"gemini_api_key", "metrics_token"})
        shown["database_url"] = redact_url(self.database_url)
        shown["redis_url"] = redact_url(self.redis_url)
        shown["gemini_api_key"] = "set" if self.gemini_api_key else "not set"
        shown["metrics_token"] = "set" if self.metrics_token else "not set"
        shown["blob_storage_options"] = _hide_credentials(shown["blob_storage_options"])
        return shown


# Keys of VISIONQ_BLOB_STORAGE_OPTIONS (at any depth) whose values are credentials:
# s3fs "key"/"secret"/"token", gcsfs "token", botocore "aws_secret_access_key", ...
_CREDENTIAL_KEY = re.compile(r"key|secret|token|password|credential", re.IGNORECASE)


def _hide_credentials(value: object) -> object:
    """``value`` with every credential-named key's value (nested too) shown as "set"."""
    if isinstance(value, dict):
        return {
            name: "set" if _CREDENTIAL_KEY.search(str(name)) else _hide_credentials(item)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [_hide_credentials(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)  # an endpoint written as http://user:pw@host
    return value


def redact_url(url: str) -> str:
    """Hide the password of a URL such as postgresql://user:pw@host/db."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.expanduser().read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold a JSON object")
    return data


# Settings that were replaced: starting with one set would silently ignore it.
_REPLACED = {
    "VISIONQ_TOKEN_RULES_FILE": "VISIONQ_MODELS_FILE (the model catalogue's image_tokens)",
    "VISIONQ_PRICES_FILE": "VISIONQ_MODELS_FILE (the model catalogue's prices)",
}


def get_settings() -> Settings:
    """Build the settings from the environment (and defaults).

    Raises ValueError for a replaced setting that is still set, naming its successor.
    """
    stale = [name for name in _REPLACED if os.environ.get(name)]
    if stale:
        raise ConfigurationError(
            "; ".join(f"{name} is no longer read: use {_REPLACED[name]}" for name in stale)
        )
    return Settings()
