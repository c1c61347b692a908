import asyncio
import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Scope

from app.config import Settings
from app.main import create_app
from tests.conftest import FIRST, LAST, MODEL


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format."""
    wanted = sorted(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.compile(re.escape(name) + r"(?:\{(.*)\})? (\S+)")
    for line in metrics.splitlines():
        match = pattern.fullmatch(line)
        found = match.group(1).split(",") if match and match.group(1) else []
        if match and sorted(found) == wanted:
            return float(match.group(2))
    raise AssertionError(f"no sample {name} with {wanted} in:\n{metrics}")


def test_metrics_count_requests_per_route_and_status(client: TestClient) -> None:
    client.post("/predict", json=FIRST.features)
    client.post("/predict", json=FIRST.features)
    client.post("/predict", json={})
    metrics = client.get("/metrics").text
    count = "http_requests_total"
    assert sample(metrics, count, method="POST", route="/predict", status="200") == 2
    assert sample(metrics, count, method="POST", route="/predict", status="422") == 1


def test_metrics_time_requests_per_route(client: TestClient) -> None:
    client.get("/health/live")
    metrics = client.get("/metrics").text
    histogram = "http_request_duration_seconds_count"
    assert sample(metrics, histogram, method="GET", route="/health/live") == 1


def test_metrics_group_unknown_paths_under_one_label(client: TestClient) -> None:
    client.get("/no/such/path/123")
    metrics = client.get("/metrics").text
    assert "/no/such/path" not in metrics
    count = "http_requests_total"
    assert sample(metrics, count, method="GET", route="unmatched", status="404") == 1


def test_metrics_count_inference_protocol_requests_by_route(
    client: TestClient,
) -> None:
    tensor = {
        "name": "features",
        "shape": [2, len(FIRST.features)],
        "datatype": "FP32",
        "data": [*FIRST.features.values(), *LAST.features.values()],
    }
    client.post(f"/v2/models/{MODEL.name}/infer", json={"inputs": [tensor]})
    client.post("/v2/models/other/infer", json={"inputs": [tensor]})
    metrics = client.get("/metrics").text
    route = "/v2/models/{name}/infer"
    count = "http_requests_total"
    assert sample(metrics, count, method="POST", route=route, status="200") == 1
    assert sample(metrics, count, method="POST", route=route, status="404") == 1


def test_metrics_record_rows_per_batched_run_and_their_wait() -> None:
    settings = Settings(_env_file=None, max_rows_per_run=8)
    with TestClient(create_app(settings)) as client:
        client.post("/predict", json=FIRST.features)
        client.post("/predict", json=LAST.features)
        metrics = client.get("/metrics").text
    # One request at a time: each model run has one row.
    assert sample(metrics, "batch_rows_count") == 2
    assert sample(metrics, "batch_rows_sum") == 2
    assert sample(metrics, "batch_wait_seconds_count") == 2


def test_metrics_label_a_413_with_its_route() -> None:
    settings = Settings(_env_file=None, max_body_bytes=64)
    with TestClient(create_app(settings)) as client:
        client.post("/predict/batch", json={"instances": [FIRST.features] * 2})
        metrics = client.get("/metrics").text
    count = "http_requests_total"
    labels = {"method": "POST", "route": "/predict/batch", "status": "413"}
    assert sample(metrics, count, **labels) == 1


def test_metrics_label_the_docs_with_their_routes(client: TestClient) -> None:
    client.get("/openapi.json")
    asset = re.search(r'src="(/[^"]+\.js)"', client.get("/docs").text)
    assert asset, "no script in /docs"
    client.get(asset.group(1))
    metrics = client.get("/metrics").text
    assert "unmatched" not in metrics
    count = "http_requests_total"
    for route in ("/openapi.json", "/docs", "/static-offline-docs"):
        assert sample(metrics, count, method="GET", route=route, status="200") == 1


def test_metrics_count_invented_methods_as_other(client: TestClient) -> None:
    for method in ("FOO", "BAR", "BAZ"):
        client.request(method, "/predict")
    metrics = client.get("/metrics").text
    assert "FOO" not in metrics
    count = "http_requests_total"
    assert sample(metrics, count, method="other", route="/predict", status="405") == 3


def http_scope(method: str, path: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }


async def scrape(app: FastAPI) -> str:
    sent: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message.get("body", b""))

    await app(http_scope("GET", "/metrics"), receive, send)
    return b"".join(sent).decode()


def test_metrics_report_requests_in_flight_against_the_concurrency_limit() -> None:
    app = create_app(Settings(_env_file=None, limit_concurrency=64), MODEL)

    async def scrapes_around_an_upload() -> tuple[str, str]:
        body_sent = asyncio.Event()

        async def receive_when_sent() -> Message:
            await body_sent.wait()
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def discard(message: Message) -> None:
            pass

        upload = asyncio.create_task(
            app(http_scope("POST", "/predict"), receive_when_sent, discard)
        )
        await asyncio.sleep(0.01)  # the upload is in, waiting for its body
        during = await scrape(app)
        body_sent.set()
        await upload
        return during, await scrape(app)

    during, after = asyncio.run(scrapes_around_an_upload())
    # Each scrape counts itself.
    assert sample(during, "http_requests_in_flight") == 2
    assert sample(after, "http_requests_in_flight") == 1
    assert sample(after, "http_requests_in_flight_limit") == 64


def test_metrics_count_the_requests_shed_by_route() -> None:
    settings = Settings(_env_file=None, max_model_requests=1)
    with TestClient(create_app(settings)) as client:
        client.app.state.admission.in_flight = 1  # type: ignore[attr-defined]
        assert client.post("/predict", json=FIRST.features).status_code == 503
        client.app.state.admission.in_flight = 0  # type: ignore[attr-defined]
        metrics = client.get("/metrics").text
    assert sample(metrics, "http_requests_shed_total", route="/predict") == 1
