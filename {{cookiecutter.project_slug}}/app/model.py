"""The sample model: an Iris classifier evaluated in plain Python.

The artifact is a multinomial logistic regression stored as JSON (weights,
metadata and a checksum), so loading it runs no code and serving needs no
machine-learning library. To serve your own model, replace ``Features``,
``load`` and ``Model`` here and the artifact beside this file; the HTTP layer
only relies on ``load(path) -> Model`` and ``Model.predict(Features)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL_PATH = Path(__file__).with_name("model.json")
ARTIFACT_FORMAT = "multinomial-logistic-regression/v1"
REQUIRED_KEYS = (
    "name",
    "version",
    "feature_names",
    "classes",
    "coefficients",
    "intercepts",
    "training",
    "sha256",
)

# Each measurement is a length in centimetres: finite, positive and at most
# 100, which also keeps every score far from floating-point overflow.
Centimetres = Annotated[float, Field(gt=0, le=100, strict=True, allow_inf_nan=False)]


class Features(BaseModel):
    """One flower's measurements, in centimetres."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "sepal_length": 5.1,
                    "sepal_width": 3.5,
                    "petal_length": 1.4,
                    "petal_width": 0.2,
                }
            ]
        },
    )

    sepal_length: Centimetres
    sepal_width: Centimetres
    petal_length: Centimetres
    petal_width: Centimetres


class Prediction(BaseModel):
    """The most likely class and the probability of every class."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "label": "setosa",
                    "probabilities": {
                        "setosa": 0.98,
                        "versicolor": 0.02,
                        "virginica": 0.0,
                    },
                }
            ]
        },
    )

    label: str
    probabilities: dict[str, float]


class ModelError(Exception):
    """The model artifact is missing, unreadable or corrupt."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"cannot load model from '{path}': {problem}")
        self.path = path
        self.problem = problem


class Model:
    """A trained multinomial logistic regression."""

    def __init__(self, artifact: Mapping[str, Any]) -> None:
        self.name: str = artifact["name"]
        self.version: str = artifact["version"]
        self.feature_names: tuple[str, ...] = tuple(artifact["feature_names"])
        self.classes: tuple[str, ...] = tuple(artifact["classes"])
        self.training: dict[str, Any] = dict(artifact["training"])
        self._weights = tuple(
            (float(intercept), tuple(float(w) for w in row))
            for intercept, row in zip(
                artifact["intercepts"], artifact["coefficients"], strict=True
            )
        )

    def predict(self, features: Features) -> Prediction:
        values = self._pre_process(features)
        scores = self._predict(values)
        return self._post_process(scores)

    def predict_batch(self, batch: Sequence[Features]) -> list[Prediction]:
        return [self.predict(features) for features in batch]

    def _pre_process(self, features: Features) -> tuple[float, ...]:
        return tuple(getattr(features, name) for name in self.feature_names)

    def _predict(self, values: tuple[float, ...]) -> list[float]:
        # The weights were checked against the features when loaded, so the
        # lengths match; map() keeps the dot product out of the interpreter loop.
        return [
            sum(map(operator.mul, row, values), intercept)
            for intercept, row in self._weights
        ]

    def _post_process(self, scores: list[float]) -> Prediction:
        # Softmax, shifted by the largest score so exp() cannot overflow.
        top = max(scores)
        exps = [math.exp(score - top) for score in scores]
        total = sum(exps)
        probabilities = {
            label: exp / total for label, exp in zip(self.classes, exps, strict=True)
        }
        return Prediction(
            label=self.classes[scores.index(top)], probabilities=probabilities
        )


def checksum(artifact: Mapping[str, Any]) -> str:
    """SHA-256 of the artifact's canonical JSON, without its own checksum."""
    payload = {key: value for key, value in artifact.items() if key != "sha256"}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load(path: Path = DEFAULT_MODEL_PATH) -> Model:
    """Read, verify and build the model stored at ``path``."""
    try:
        artifact = json.loads(path.read_bytes())
    except OSError as error:
        raise ModelError(path, error.strerror or str(error)) from error
    except ValueError as error:
        raise ModelError(path, f"not valid JSON ({error})") from error
    try:
        _verify(path, artifact)
        return Model(artifact)
    except (TypeError, ValueError, KeyError) as error:
        raise ModelError(path, f"malformed artifact ({error!r})") from error


def _verify(path: Path, artifact: Any) -> None:
    if not isinstance(artifact, dict):
        raise ModelError(path, "expected a JSON object")
    if artifact.get("format") != ARTIFACT_FORMAT:
        raise ModelError(
            path, f"format {artifact.get('format')!r} is not {ARTIFACT_FORMAT!r}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in artifact]
    if missing:
        raise ModelError(path, f"missing keys: {', '.join(missing)}")
    if artifact["sha256"] != checksum(artifact):
        raise ModelError(path, "checksum mismatch: the file was changed or damaged")
    n_classes, n_features = len(artifact["classes"]), len(artifact["feature_names"])
    coefficients, intercepts = artifact["coefficients"], artifact["intercepts"]
    if (
        len(intercepts) != n_classes
        or len(coefficients) != n_classes
        or any(len(row) != n_features for row in coefficients)
    ):
        raise ModelError(
            path, f"weights do not fit {n_classes} classes x {n_features} features"
        )
    weights = [*intercepts, *(weight for row in coefficients for weight in row)]
    if not all(map(_is_finite_number, weights)):
        raise ModelError(path, "weights must be finite numbers")


def _is_finite_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
