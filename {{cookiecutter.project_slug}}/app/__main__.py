"""Run the service: ``python -m app``, configured by ``APP_*`` settings."""

import sys

import uvicorn
from pydantic import ValidationError

from app import model
from app.config import Settings, describe_errors
from app.logs import logging_config

# In-flight requests get this long to finish after SIGTERM; keep it below the
# stop timeout of whatever runs the process.
GRACEFUL_SHUTDOWN_SECONDS = 20
# Exit statuses: 1 for a model that cannot be served, 2 for invalid settings.
EXIT_BAD_MODEL = 1
EXIT_BAD_SETTINGS = 2


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as error:
        print(*describe_errors(error), sep="\n", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
    try:
        # Fail fast, before binding the port, rather than serve errors.
        model.load(settings.model_path)
    except model.ModelError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_MODEL)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=logging_config(settings),
        access_log=False,  # app.middleware logs each request, with its id
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


if __name__ == "__main__":
    main()
