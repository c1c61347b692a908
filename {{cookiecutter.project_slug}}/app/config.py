"""Runtime settings, read from ``APP_*`` environment variables and ``.env``."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app import security, tracing

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
# Upper bounds that keep a typo from reaching a library as a number it cannot
# take (ONNX Runtime's thread count is a 32-bit integer; asyncio's timers end
# in an overflow long before 2**63 seconds).
MAX_PROCESSES_OR_THREADS = 1024
MAX_SECONDS = 24 * 60 * 60
# Settings whose values an error message never repeats.
SECRETS = frozenset({"api_keys"})
# The sample model, packaged beside this file; app.model and app.train use it.
DEFAULT_MODEL_PATH = Path(__file__).with_name("model.onnx")
# Settings renamed since the first release, and their names now. An old name
# stops start-up rather than being ignored, which would quietly put back the
# default: this is a template, so no deployment of a new render has the old
# names set, and a project updated from the template sees the new names in its
# update's diff.
RENAMED = {
    "max_batch_size": "max_rows_per_request",
    "batch_max_size": "max_rows_per_run",
    "batch_max_wait_ms": "max_wait_per_run_ms",
    "opentelemetry": "tracing",
}


class Settings(BaseSettings):
    """Every knob of the service; see ``.env.example`` for the defaults."""

    model_config = SettingsConfigDict(
        env_prefix="APP_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=MAX_PROCESSES_OR_THREADS)
    log_level: LogLevel = "info"
    log_json: bool = False
    model_path: Path = DEFAULT_MODEL_PATH
    # ONNX Runtime's threads per worker; scale with workers or replicas instead.
    model_threads: int = Field(default=1, ge=1, le=MAX_PROCESSES_OR_THREADS)
    # The largest model artifact the service reads, in bytes: checked before
    # the file is read, far above any tabular model (the sample is a few KB).
    model_max_bytes: int = Field(default=1024**3, ge=1)
    # Rows one request may carry: the instances of /predict/batch, the rows of
    # a /v2 infer tensor.
    max_rows_per_request: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # Micro-batching: concurrent requests share one model run of at most this
    # many rows (1: each request runs the model on its own).
    max_rows_per_run: int = Field(default=64, ge=1)
    # The longest a request waits for others to join its model run.
    max_wait_per_run_ms: float = Field(
        default=0.0, ge=0, le=MAX_SECONDS * 1000, allow_inf_nan=False
    )
    # A comma-separated list in the environment, e.g. "https://a.example,https://b.example".
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # OpenTelemetry traces, exported over OTLP/HTTP as the standard OTEL_*
    # variables say (see app/tracing.py); needs the `tracing` extra.
    tracing: bool = False
    # Connections and requests at once, per worker; beyond it, uvicorn answers
    # 503 at once. Open connections count, idle or not, so it sits above the
    # usual open-file limit (1024): a raised limit stays bounded, and a few
    # hundred slow clients cannot turn everyone's answer into a 503.
    limit_concurrency: int = Field(default=2048, ge=1)
    # Requests to the model's routes let in at once, per worker, from the
    # moment their head is read to their answer; beyond it, 503 with
    # Retry-After at once, before the body is read, so that the requests let in
    # keep their latency instead of queueing behind an overload. One full
    # batch (APP_MAX_ROWS_PER_RUN): with a model of 1 ms a row, at four times the
    # load the service carries, 64 let in more requests than 32 or 128, with a
    # p99 between theirs.
    max_model_requests: int = Field(default=64, ge=1)
    # Seconds an idle connection stays open after a response, and (with
    # httptools) the time a client has to send a whole request head.
    timeout_keep_alive: int = Field(default=5, ge=1, le=MAX_SECONDS)
    # Seconds a client has to send a whole request body, counted from the end
    # of its head (with httptools); slower ones get 408. Whole, not between two
    # bytes: a byte now and then cannot hold a request slot for longer.
    timeout_body: int = Field(default=10, ge=1, le=MAX_SECONDS)
    # Largest request line and headers, in bytes; larger heads get 431.
    max_head_bytes: int = Field(default=16 * 1024, ge=1024)
    # uvicorn's HTTP parser: httptools (the faster; see app/http_protocol.py) or
    # h11 (pure Python; it enforces max_head_bytes only on heads that are still
    # incomplete, and has no deadline for heads or bodies).
    http: Literal["httptools", "h11"] = "httptools"
    # After SIGTERM, in-flight requests get this long to finish; those still
    # running are then answered 503. Keep it below the stop timeout of whatever
    # runs the process.
    timeout_graceful_shutdown: int = Field(default=20, ge=0, le=MAX_SECONDS)

    # API keys (off when neither is set): "name:key,name:key", and a file of
    # one name:key a line, read again when it changes. Keys are 16 characters
    # or more; the names are what the logs show of a client.
    api_keys: SecretStr = SecretStr("")
    api_keys_file: Path | None = None
    # With keys on, the paths besides the model's routes that take a key too,
    # comma-separated: the API docs' (/docs,/redoc,/openapi.json), say.
    api_keys_also_for: Annotated[tuple[str, ...], NoDecode] = ()

    # The old names, only to refuse them (see RENAMED).
    max_batch_size: None = Field(default=None, exclude=True)
    batch_max_size: None = Field(default=None, exclude=True)
    batch_max_wait_ms: None = Field(default=None, exclude=True)
    opentelemetry: None = Field(default=None, exclude=True)

    @field_validator(*RENAMED, mode="before")
    @classmethod
    def _renamed(cls, value: object, info: ValidationInfo) -> None:
        if value is not None:
            new_name = RENAMED[str(info.field_name)]
            raise ValueError(f"renamed: set APP_{new_name.upper()} instead")
        return None

    @field_validator("api_keys")
    @classmethod
    def _well_formed_keys(cls, value: SecretStr) -> SecretStr:
        security.parse(value.get_secret_value().split(","), "entry")
        return value

    @field_validator("api_keys_file")
    @classmethod
    def _readable_key_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            security.read_file(value)
        return value

    def api_key_pairs(self) -> list[tuple[str, str]]:
        """The keys of APP_API_KEYS, by client name."""
        return security.parse(self.api_keys.get_secret_value().split(","), "entry")

    @field_validator("tracing")
    @classmethod
    def _tracing_installed(cls, value: bool) -> bool:
        if value and not tracing.installed():
            raise ValueError(tracing.INSTALL_HINT)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cors_origins", "api_keys_also_for", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            items = (item.strip() for item in value.split(","))
            return tuple(item for item in items if item)
        return value


def describe_errors(error: ValidationError) -> list[str]:
    """One line per invalid setting, naming its variable and what would be valid."""
    prefix = Settings.model_config.get("env_prefix", "")
    lines = []
    for item in error.errors():
        variable = f"{prefix}{item['loc'][0]}".upper()
        valid = item["msg"].removeprefix("Value error, ")
        valid = valid[:1].lower() + valid[1:]
        # A secret is never shown, not even when it is wrong.
        shown = "the value" if item["loc"][0] in SECRETS else repr(item["input"])
        lines.append(f"ERROR: {shown} is not a valid {variable}: {valid}")
    return lines
