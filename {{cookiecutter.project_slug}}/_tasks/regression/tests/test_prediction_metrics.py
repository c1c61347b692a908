from fastapi.testclient import TestClient

from app.prediction_metrics import VALUE_BUCKETS
from tests.conftest import FIRST, LAST, MODEL
from tests.test_metrics import sample


def test_metrics_count_predictions_and_their_values(client: TestClient) -> None:
    client.post("/predict", json=LAST.features)
    client.post(
        "/predict/batch",
        json={"instances": [FIRST.features, LAST.features, LAST.features]},
    )
    metrics = client.get("/metrics").text
    assert sample(metrics, "predictions_total") == 4
    assert sample(metrics, "predicted_value_count") == 4
    total = FIRST.value + 3 * LAST.value
    assert abs(sample(metrics, "predicted_value_sum") - total) <= 1e-3 * total
    # Each value falls in the buckets from the first bound at or above it.
    for bound in VALUE_BUCKETS:
        expected = (FIRST.value <= bound) + 3 * (LAST.value <= bound)
        assert sample(metrics, "predicted_value_bucket", le=f"{bound:.1f}") == expected


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
    assert sample(metrics, "predictions_total") == 1
    assert sample(metrics, "predicted_value_count") == 1
