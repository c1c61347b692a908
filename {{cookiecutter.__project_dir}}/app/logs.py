"""Logging, configured once from the settings: text for people, JSON for collectors.

Every record carries the id of the request being served (``-`` outside one), so
the lines of one request can be found together.
"""

import logging
from contextvars import ContextVar
from typing import Any

from app.config import Settings

request_id: ContextVar[str] = ContextVar("request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
JSON_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s %(process)d %(request_id)s %(message)s"
)


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn alike."""
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FORMAT,
            "rename_fields": {
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
            },
        }
        if settings.log_json
        else {"format": TEXT_FORMAT}
    )
    handler = {"handlers": ["default"], "propagate": False}
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "app": {**handler, "level": level},
            "uvicorn": {**handler, "level": level},
        },
    }
