"""The Prometheus metric of what the classifier predicts: a count per class."""

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter

from app.model import Prediction


class PredictionMetrics:
    """Count predictions by predicted class (the model's classes, a bounded set)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.predictions = Counter(
            "predictions",
            "Predictions by predicted class.",
            ["label"],
            registry=registry,
        )
        self._per_label: dict[str, Counter] = {}

    def __call__(self, predictions: Sequence[Prediction]) -> None:
        for prediction in predictions:
            label = prediction.label
            if label not in self._per_label:
                self._per_label[label] = self.predictions.labels(label)
            self._per_label[label].inc()
