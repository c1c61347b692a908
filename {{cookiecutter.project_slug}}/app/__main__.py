"""Run the service: ``python -m app``, configured by ``APP_*`` settings."""

import functools
import signal
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from app import model
from app.config import Settings, describe_errors
from app.http_protocol import LimitedHttpToolsProtocol
from app.logs import logging_config
from app.main import create_app

# Exit statuses: 0 after a clean stop (SIGTERM included), 1 for a model that
# cannot be served, 2 for invalid settings.
EXIT_BAD_MODEL = 1
EXIT_BAD_SETTINGS = 2
FACTORY = "app.main:create_app"


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        print(*describe_errors(error), sep="\n", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
    try:
        # Fail fast, before binding the port, rather than serve errors.
        loaded = model.load(
            settings.model_path,
            threads=settings.model_threads,
            max_bytes=settings.model_max_bytes,
        )
    except model.ModelError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_MODEL)
    # One worker serves the model loaded above. Several workers are processes
    # of their own: each builds the app from the settings and loads the model.
    app: FastAPI | str = (
        create_app(settings, loaded) if settings.workers == 1 else FACTORY
    )
    # Once it has drained, uvicorn raises the SIGTERM it caught again, which
    # would end a single process with status 143 (0 with several workers, or
    # as PID 1 in a container): make a clean stop exit 0 in every mode.
    signal.signal(signal.SIGTERM, _stop_cleanly)
    uvicorn.run(
        app,
        factory=app == FACTORY,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings),
        access_log=False,  # app.middleware logs each request, with its id
        limit_concurrency=settings.limit_concurrency,
        timeout_keep_alive=settings.timeout_keep_alive,
        http=_http_protocol(settings),  # type: ignore[arg-type]
        h11_max_incomplete_event_size=settings.max_head_bytes,
        timeout_graceful_shutdown=settings.timeout_graceful_shutdown,
    )


def _http_protocol(
    settings: Settings,
) -> str | functools.partial[LimitedHttpToolsProtocol]:
    """uvicorn's h11, or httptools with the limits of app/http_protocol.py.

    uvicorn calls it as it would a protocol class; a partial, unlike a class
    made here, can also be sent to worker processes.
    """
    if settings.http == "h11":
        return "h11"
    return functools.partial(
        LimitedHttpToolsProtocol, timeout_body=settings.timeout_body
    )


def _stop_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    main()
