import logging
import re

import pytest
from fastapi.testclient import TestClient

from tests.conftest import SETOSA


def test_request_id_is_generated_and_echoed(client: TestClient) -> None:
    response = client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_request_id_from_caller_is_kept(client: TestClient) -> None:
    response = client.get("/health/live", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


def test_unsafe_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/health/live", headers={"x-request-id": "a b\tc"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_each_request_is_logged_once_with_status_and_latency(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.post("/predict", json=SETOSA, headers={"x-request-id": "req-42"})
    (record,) = [r for r in caplog.records if r.name == "app.access"]
    fields = vars(record)
    assert (fields["method"], fields["path"], fields["status"]) == (
        "POST",
        "/predict",
        200,
    )
    assert fields["duration_ms"] > 0
    assert re.fullmatch(r"POST /predict 200 \d+\.\d\dms", record.getMessage())


def test_rejected_requests_are_logged_with_their_status(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.access"):
        client.post("/predict", json={})
    (record,) = [r for r in caplog.records if r.name == "app.access"]
    assert vars(record)["status"] == 422
