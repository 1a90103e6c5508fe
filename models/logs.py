"""One logging setup for every visionq process (API, worker, the emulator under `dev`).

VISIONQ_LOG_FORMAT=text (default) writes ``time level logger message`` lines for people;
json writes one JSON object per line for log collectors, with the fields a line carries
(``extra=``, e.g. the access log's request_id, tenant, job_id and status) as keys.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
    "taskName",
}
# Libraries that log a line per request or per call at INFO (the SDK's "AFC is enabled",
# httpx's "HTTP Request: POST ...", Celery's "received"/"succeeded" with its own task id,
# Alembic's "setup plugin" lines whenever the schema revision is read): noise on every job.
# Their warnings and errors stay.
NOISY = (
    "google_genai",
    "httpx",
    "httpx2",
    "celery.app.trace",
    "celery.worker.strategy",
    "alembic.runtime.plugins",
)


class JsonFormatter(logging.Formatter):
    """A LogRecord as one JSON object: time (UTC, ISO 8601), level, logger, message,
    the ``extra=`` fields, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig dictionary: one stderr handler on the root logger in
    ``log_format``; uvicorn's loggers propagate to it (its access log is ours instead)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    level = level.upper()
    quiet = logging.getLevelName(max(logging.WARNING, logging.getLevelName(level)))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"visionq": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "visionq",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn configures these with handlers of its own unless told otherwise.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            **{name: {"level": quiet} for name in NOISY},
        },
    }


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """Set up this process's logging (see :func:`logging_config`)."""
    logging.config.dictConfig(logging_config(log_format, level))
