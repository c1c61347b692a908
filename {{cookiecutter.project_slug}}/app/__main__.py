"""Run the service: ``python -m app``, configured by ``APP_*`` settings."""

import sys

import uvicorn

from app import model
from app.config import Settings
from app.logs import logging_config

# In-flight requests get this long to finish after SIGTERM; keep it below the
# stop timeout of whatever runs the process.
GRACEFUL_SHUTDOWN_SECONDS = 20


def main() -> None:
    settings = Settings()
    try:
        # Fail fast, before binding the port, rather than serve errors.
        model.load(settings.model_path)
    except model.ModelError as error:
        sys.exit(f"ERROR: {error}")
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
