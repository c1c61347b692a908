"""Runtime settings, read from ``APP_*`` environment variables and ``.env``."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.model import DEFAULT_MODEL_PATH

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class Settings(BaseSettings):
    """Every knob of the service; see ``.env.example`` for the defaults."""

    model_config = SettingsConfigDict(
        env_prefix="APP_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: LogLevel = "info"
    log_json: bool = False
    model_path: Path = DEFAULT_MODEL_PATH
    # ONNX Runtime's threads per worker; scale with workers or replicas instead.
    model_threads: int = Field(default=1, ge=1)
    max_batch_size: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # A comma-separated list in the environment, e.g. "https://a.example,https://b.example".
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # FastAPI's own OpenTelemetry spans, metrics and logs, sent to the providers
    # you configure. Off by default: it looks for them on every request.
    opentelemetry: bool = False

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            origins = (origin.strip() for origin in value.split(","))
            return tuple(origin for origin in origins if origin)
        return value
