"""Benchmark stand-in for a rendered project's app/model.py: serves an ONNX file.

The benchmark copies the rendered project, renames its app/model.py to
app/iris_model.py and puts this file in its place, so the service runs the
heavy model (build.py) through the same interface: ``load(path) -> Model``,
``Model.predict`` and ``Model.predict_batch``, one ``session.run`` per batch.
It goes once the rendered project serves ONNX models itself.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from app.iris_model import DEFAULT_MODEL_PATH, Features, ModelError, Prediction

CLASSES = ("setosa", "versicolor", "virginica")


class Model:
    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.name = "heavy-mlp"
        self.version = "1"
        self.feature_names = tuple(Features.model_fields)
        self.classes = CLASSES
        self.training: dict[str, Any] = {}
        self._session = session

    def predict(self, features: Features) -> Prediction:
        return self.predict_batch([features])[0]

    def predict_batch(self, batch: Sequence[Features]) -> list[Prediction]:
        rows = [[getattr(f, name) for name in self.feature_names] for f in batch]
        (probabilities,) = self._session.run(
            None, {"features": np.asarray(rows, dtype=np.float32)}
        )
        return [
            Prediction(
                label=self.classes[int(row.argmax())],
                probabilities=dict(zip(self.classes, row.tolist(), strict=True)),
            )
            for row in probabilities
        ]


def load(path: Path = DEFAULT_MODEL_PATH, *, threads: int = 1) -> Model:
    if path.suffix != ".onnx":
        raise ModelError(path, "the heavy benchmark profile serves a .onnx file")
    options = onnxruntime.SessionOptions()
    # APP_MODEL_THREADS, 1 by default: throughput per core.
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    return Model(session)
