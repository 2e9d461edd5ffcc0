"""Logging set-up for every process: human-readable by default, one JSON object per line with
``BILLSTREAM_LOG__FORMAT=json`` (for log shippers), the order number as its own field."""
from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

# extra fields a log call may carry (``log.info(..., extra={"order_number": n})``)
FIELDS = ("order_number", "image_sha256", "principal", "status", "error_code")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(level: int | str, fmt: str = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict: also handed to Faust's worker, which replaces
    the root logger's handlers when it starts."""
    formatter: dict[str, Any] = ({"()": f"{__name__}.JsonFormatter"} if fmt == "json"
                                 else {"format": "%(levelname)s %(name)s: %(message)s"})
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"billstream": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "billstream",
                                 "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["default"]},
        # "who sent this bill" must be answerable whatever the verbosity
        "loggers": {"billstream.audit": {"level": "INFO"}},
    }


def configure_logging(level: int | str, fmt: str = "text") -> None:
    logging.config.dictConfig(logging_config(level, fmt))
