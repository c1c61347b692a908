import re

from fastapi.testclient import TestClient

from tests.conftest import FIRST, LAST, MODEL


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format."""
    wanted = sorted(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.compile(re.escape(name) + r"\{(.*)\} (\S+)")
    for line in metrics.splitlines():
        match = pattern.fullmatch(line)
        if match and sorted(match.group(1).split(",")) == wanted:
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


def test_metrics_count_predictions_per_class(client: TestClient) -> None:
    client.post("/predict", json=LAST.features)
    client.post(
        "/predict/batch",
        json={"instances": [FIRST.features, LAST.features, LAST.features]},
    )
    metrics = client.get("/metrics").text
    assert sample(metrics, "predictions_total", label=LAST.label) == 3
    assert sample(metrics, "predictions_total", label=FIRST.label) == 1


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
    assert sample(metrics, "predictions_total", label=LAST.label) == 1
