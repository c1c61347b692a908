"""The Prometheus metrics of what the regressor predicts: a count, and the
predicted values in a histogram, whose drift is worth watching."""

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from app.model import Prediction

# Spread over the sample's target, the progression of diabetes after a year
# (25 to 346 in the training data): set them to your own target's range.
VALUE_BUCKETS = (25, 50, 75, 100, 125, 150, 175, 200, 225, 250, 275, 300, 350)


class PredictionMetrics:
    """Count predictions, and record the values predicted."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.predictions = Counter(
            "predictions", "Predictions made.", registry=registry
        )
        self.values = Histogram(
            "predicted_value",
            "The values predicted.",
            buckets=VALUE_BUCKETS,
            registry=registry,
        )

    def __call__(self, predictions: Sequence[Prediction]) -> None:
        self.predictions.inc(len(predictions))
        for prediction in predictions:
            self.values.observe(prediction.value)
