"""Run the service: ``python -m app``, configured by ``APP_*`` settings."""

import sys

import uvicorn

from app import model
from app.config import Settings


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
    )


if __name__ == "__main__":
    main()
