import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.logs import (
    TEXT_FORMAT,
    JsonLinesFormatter,
    TextFormatter,
    logging_config,
    request_id,
)


@pytest.fixture
def configure(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Let a test apply a logging config, then put the loggers back."""
    loggers = [logging.getLogger(name) for name in ("app", "uvicorn")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


def log_one_line(settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    logging.config.dictConfig(logging_config(settings))
    token = request_id.set("req-1")
    try:
        logging.getLogger("app.test").info("hello %s", "there", extra={"status": 200})
    finally:
        request_id.reset(token)
    (line,) = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.usefixtures("configure")
def test_text_logs_carry_level_logger_and_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = log_one_line(Settings(_env_file=None), capsys)
    assert line.endswith(" INFO    app.test [req-1] hello there")


@pytest.mark.usefixtures("configure")
def test_json_logs_are_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = log_one_line(Settings(_env_file=None, log_json=True), capsys)
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["logger"] == "app.test"
    assert record["request_id"] == "req-1"
    assert record["message"] == "hello there"
    assert record["status"] == 200
    assert "time" in record


@pytest.mark.usefixtures("configure")
def test_log_level_setting_filters_records(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(
        logging_config(Settings(_env_file=None, log_level="warning"))
    )
    logging.getLogger("app.test").info("hidden")
    logging.getLogger("app.test").warning("shown")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING app.test [-] shown")


@pytest.mark.parametrize("formatter", [TextFormatter, JsonLinesFormatter])
def test_timestamps_match_the_standard_formatter(
    formatter: type[logging.Formatter],
) -> None:
    fast, standard = formatter(TEXT_FORMAT), logging.Formatter(TEXT_FORMAT)
    # Within a second, across one, and back again (a clock can step back).
    for created in (1.7e9 + 0.25, 1.7e9 + 0.999, 1.7e9 + 1.5, 1.7e9 - 1):
        record = logging.makeLogRecord({"created": created})
        record.msecs = created % 1 * 1000
        assert fast.formatTime(record) == standard.formatTime(record), created
    record = logging.makeLogRecord({"created": 1_700_000_000.0})
    assert fast.formatTime(record, "%Y") == standard.formatTime(record, "%Y")


@pytest.mark.usefixtures("configure")
def test_text_logs_escape_control_characters_from_the_client(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(logging_config(Settings(_env_file=None)))
    forged = "%0a2026-01-01 12:00:00,000 INFO    app.access [admin] POST /admin 200"
    client.get(f"/health/{forged}%0d%1b[2J%00%c2%85%e2%80%a8")
    (line,) = capsys.readouterr().err.splitlines()
    assert (
        " GET /health/\\x0a2026-01-01 12:00:00,000 INFO    app.access [admin]"
        " POST /admin 200\\x0d\\x1b[2J\\x00\\x85\\u2028 404 "
    ) in line
