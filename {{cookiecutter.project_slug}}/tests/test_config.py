import pytest
from pydantic import ValidationError

from app.config import Settings, describe_errors
from app.model import DEFAULT_MODEL_PATH


def test_settings_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.workers == 1
    assert settings.log_level == "info"
    assert settings.log_json is False
    assert settings.model_path == DEFAULT_MODEL_PATH
    assert settings.max_rows_per_request == 1000
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.cors_origins == ()
    assert settings.max_rows_per_run == 64
    assert settings.max_wait_per_run_ms == 0
    assert settings.limit_concurrency == 2048
    assert settings.timeout_keep_alive == 5
    assert settings.timeout_body == 10
    assert settings.max_head_bytes == 16 * 1024
    assert settings.http == "httptools"
    assert settings.timeout_graceful_shutdown == 20


def test_settings_read_app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PORT", "9000")
    monkeypatch.setenv("APP_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("APP_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings(_env_file=None)
    assert settings.port == 9000
    assert settings.log_level == "debug"
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_settings_reject_invalid_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("name", "value"),
    [("APP_MAX_ROWS_PER_RUN", "0"), ("APP_MAX_WAIT_PER_RUN_MS", "-1")],
)
def test_settings_reject_invalid_batching(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("APP_").lower()):
        Settings(_env_file=None)


@pytest.mark.parametrize("value", ["0", "1.5", "soon"])
def test_settings_reject_invalid_body_deadline(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("APP_TIMEOUT_BODY", value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    [line] = describe_errors(caught.value)
    assert line.startswith(f"ERROR: {value!r} is not a valid APP_TIMEOUT_BODY: ")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("APP_MAX_BATCH_SIZE", "APP_MAX_ROWS_PER_REQUEST"),
        ("APP_BATCH_MAX_SIZE", "APP_MAX_ROWS_PER_RUN"),
        ("APP_BATCH_MAX_WAIT_MS", "APP_MAX_WAIT_PER_RUN_MS"),
        ("APP_OPENTELEMETRY", "APP_TRACING"),
    ],
)
def test_a_renamed_setting_stops_start_up_naming_its_new_name(
    monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    monkeypatch.setenv(old, "8")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert describe_errors(caught.value) == [
        f"ERROR: '8' is not a valid {old}: renamed: set {new} instead"
    ]


def test_invalid_settings_are_described_one_line_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_PORT", "abc")
    monkeypatch.setenv("APP_WORKERS", "0")
    monkeypatch.setenv("APP_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert describe_errors(caught.value) == [
        "ERROR: 'abc' is not a valid APP_PORT: input should be a valid integer,"
        " unable to parse string as an integer",
        "ERROR: '0' is not a valid APP_WORKERS: input should be greater than or"
        " equal to 1",
        "ERROR: 'loud' is not a valid APP_LOG_LEVEL: input should be 'critical',"
        " 'error', 'warning', 'info', 'debug' or 'trace'",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # ONNX Runtime takes a 32-bit thread count, asyncio's timers overflow.
        ("APP_MODEL_THREADS", str(2**31)),
        ("APP_WORKERS", str(2**31)),
        ("APP_TIMEOUT_KEEP_ALIVE", str(10**12)),
        ("APP_TIMEOUT_GRACEFUL_SHUTDOWN", str(10**12)),
        ("APP_MAX_WAIT_PER_RUN_MS", "1e15"),
        ("APP_MODEL_MAX_BYTES", "0"),
    ],
)
def test_settings_reject_values_no_library_could_take(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("APP_").lower()):
        Settings(_env_file=None)
