from fastapi.testclient import TestClient

from tests.conftest import FIRST, LAST, MODEL
from tests.test_metrics import sample


def test_metrics_count_predictions_per_class(client: TestClient) -> None:
    client.post("/predict", json=LAST.features)
    client.post(
        "/predict/batch",
        json={"instances": [FIRST.features, LAST.features, LAST.features]},
    )
    metrics = client.get("/metrics").text
    assert sample(metrics, "predictions_total", label=LAST.label) == 3
    assert sample(metrics, "predictions_total", label=FIRST.label) == 1


def test_metrics_count_the_predictions_of_the_inference_protocol(
    client: TestClient,
) -> None:
    tensor = {
        "name": "features",
        "shape": [1, len(LAST.features)],
        "datatype": "FP32",
        "data": list(LAST.features.values()),
    }
    client.post(f"/v2/models/{MODEL.name}/infer", json={"inputs": [tensor]})
    metrics = client.get("/metrics").text
    assert sample(metrics, "predictions_total", label=LAST.label) == 1
