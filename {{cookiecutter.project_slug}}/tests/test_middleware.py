import asyncio
import logging
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Scope

from app.logs import RequestIdFilter
from app.middleware import RequestContextMiddleware, RequestLog
from tests.conftest import FIRST


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
        client.post("/predict", json=FIRST.features, headers={"x-request-id": "req-42"})
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


def request_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (vars(r)["request_id"], r.getMessage())
        for r in caplog.records
        if r.name == "app.access"
    ]


def test_request_log_writes_a_lone_request_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        log = RequestLog()
        log.started()
        log.ended("only", "GET", "/health/live", 200, 0.001)
        assert request_lines(caplog) == [("only", "GET /health/live 200 1.00ms")]

    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="app.access"):
        asyncio.run(scenario())


def test_request_log_writes_overlapping_requests_after_the_turn_with_their_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        log = RequestLog()
        for _ in range(3):
            log.started()
        log.ended("first", "POST", "/predict", 200, 0.001)
        log.ended("second", "POST", "/predict", 422, 0.002)
        assert request_lines(caplog) == []  # two lines wait: one request is left
        await asyncio.sleep(0)  # the end of this turn of the event loop
        assert request_lines(caplog) == [
            ("first", "POST /predict 200 1.00ms"),
            ("second", "POST /predict 422 2.00ms"),
        ]
        log.ended("third", "GET", "/model", 200, 0.003)  # the last in flight
        assert request_lines(caplog)[2:] == [("third", "GET /model 200 3.00ms")]

    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="app.access"):
        asyncio.run(scenario())


def test_observers_see_each_request_with_its_route_status_and_duration() -> None:
    seen: list[tuple[str, str, int, float]] = []

    def observe(scope: Scope, status: int, seconds: float) -> None:
        seen.append((scope["method"], scope["route"].path, status, seconds))

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.add_middleware(RequestContextMiddleware, observers=[observe])
    with TestClient(app) as client:
        client.get("/items/1")
        client.get("/items/one")
    assert [entry[:3] for entry in seen] == [
        ("GET", "/items/{item_id}", 200),
        ("GET", "/items/{item_id}", 422),
    ]
    assert all(entry[3] > 0 for entry in seen)
