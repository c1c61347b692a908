"""The model: an ONNX regressor run by ONNX Runtime, and the features it takes.

The sample predicts how far diabetes progresses in a year from ten baseline
measurements: a scikit-learn pipeline exported to ONNX by ``python -m
app.train``. Loading it runs no code and serving it needs no scikit-learn. The
artifact carries its own metadata (name, version, task, feature names, target,
training scores, example rows and a checksum), which ``load`` verifies, along
with ``Features`` against the model's input.

To serve your own regressor, replace ``Features`` here and the artifact beside
this file (the README's "Use your own model" says how); the HTTP layer relies
only on ``load``, ``Model``, ``Features``, ``Prediction`` and ``ModelInfo``.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app import artifact
from app.artifact import ModelError
from app.config import DEFAULT_MODEL_PATH

__all__ = [
    "DEFAULT_MODEL_PATH",
    "Features",
    "Model",
    "ModelError",
    "ModelInfo",
    "Prediction",
    "load",
]

TASK = "regression"
# The output a regressor is exported with: a float tensor of one value per
# instance ([N] or [N, 1]).
VALUE_OUTPUT = "value"


def _measurement(low: float, high: float) -> Any:
    """A finite number greater than ``low`` and at most ``high``."""
    return Field(gt=low, le=high, strict=True, allow_inf_nan=False)


class Features(BaseModel):
    """One patient's baseline measurements.

    The fields are the model's inputs, named and ordered as the artifact's
    ``feature_names``: the service refuses to start when they differ.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "age": 59.0,
                    "sex": 2.0,
                    "bmi": 32.1,
                    "blood_pressure": 101.0,
                    "total_cholesterol": 157.0,
                    "ldl": 93.2,
                    "hdl": 38.0,
                    "cholesterol_hdl_ratio": 4.0,
                    "log_triglycerides": 4.8598,
                    "blood_sugar": 87.0,
                }
            ]
        },
    )

    age: Annotated[float, _measurement(0, 120)]  # years
    sex: Annotated[float, Field(ge=1, le=2, strict=True, allow_inf_nan=False)]
    bmi: Annotated[float, _measurement(0, 100)]  # body mass index, kg/m²
    blood_pressure: Annotated[float, _measurement(0, 300)]  # mean, mm Hg
    total_cholesterol: Annotated[float, _measurement(0, 1000)]  # mg/dL
    ldl: Annotated[float, _measurement(0, 1000)]  # low-density lipoproteins
    hdl: Annotated[float, _measurement(0, 1000)]  # high-density lipoproteins
    cholesterol_hdl_ratio: Annotated[float, _measurement(0, 100)]
    log_triglycerides: Annotated[float, _measurement(0, 20)]
    blood_sugar: Annotated[float, _measurement(0, 1000)]  # mg/dL


class Prediction(BaseModel):
    """The predicted value of the target."""

    value: float


class Tensor(NamedTuple):
    """An output of the model as a tensor: its element type, as the Open
    Inference Protocol names it, and its shape for one instance."""

    datatype: str
    shape: tuple[int, ...]


class Example(NamedTuple):
    """A row of the training data and the value the model gives it."""

    features: dict[str, float]
    value: float


class ModelInfo(BaseModel):
    """What is being served and how it was trained."""

    name: str
    version: str
    task: str
    feature_names: list[str]
    target: str
    training: dict[str, Any]


class Model:
    """A regressor in an ONNX Runtime session, with its metadata."""

    def __init__(self, loaded: artifact.Artifact) -> None:
        metadata = loaded.metadata
        self.name: str = metadata["name"]
        self.version: str = metadata["version"]
        self.feature_names: tuple[str, ...] = tuple(metadata["feature_names"])
        self.target: str = metadata["target"]
        self.training: dict[str, Any] = dict(metadata["training"])
        self.examples: tuple[Example, ...] = tuple(
            Example(dict(example["features"]), float(example["value"]))
            for example in metadata["examples"]
        )
        # The outputs as tensors, for the Open Inference Protocol.
        self.outputs = {"value": Tensor("FP32", ())}
        self._session = loaded.session
        self._input_name = loaded.input_name
        self._input_dtype = loaded.input_dtype
        self._values = operator.attrgetter(*self.feature_names)

    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            version=self.version,
            task=TASK,
            feature_names=list(self.feature_names),
            target=self.target,
            training=self.training,
        )

    def tensors(self, predictions: Sequence[Prediction]) -> dict[str, list[Any]]:
        """Each output of these predictions as one row-major list of values."""
        return {"value": [p.value for p in predictions]}

    def predict(self, features: Features) -> Prediction:
        return self.predict_batch([features])[0]

    def predict_batch(self, instances: Sequence[Features]) -> list[Prediction]:
        """Predict every instance with one run of the model."""
        inputs = self._pre_process(instances)
        values = self._predict(inputs)
        return self._post_process(values)

    def _pre_process(self, instances: Sequence[Features]) -> np.ndarray[Any, Any]:
        rows = [self._values(features) for features in instances]
        # attrgetter of one name returns the value, not a one-value tuple.
        return np.array(rows, dtype=self._input_dtype).reshape(len(rows), -1)

    def _predict(self, inputs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        outputs = self._session.run([VALUE_OUTPUT], {self._input_name: inputs})
        return np.asarray(outputs[0]).reshape(len(inputs))

    def _post_process(self, values: np.ndarray[Any, Any]) -> list[Prediction]:
        return [Prediction(value=value) for value in values.tolist()]


def load(
    path: Path = DEFAULT_MODEL_PATH,
    *,
    features: type[BaseModel] = Features,
    threads: int = 1,
    max_bytes: int = 1024**3,
) -> Model:
    """Read and verify the regressor at ``path``; check ``features`` against it.

    ``threads`` is ONNX Runtime's intra-op thread count for this session; a
    file over ``max_bytes`` is refused before it is read.
    """
    loaded = artifact.read(
        path, task=TASK, text_keys=("target",), threads=threads, max_bytes=max_bytes
    )
    _check_outputs(path, loaded)
    artifact.check_features(path, features, loaded.metadata["feature_names"])
    return Model(loaded)


def _check_outputs(path: Path, loaded: artifact.Artifact) -> None:
    metadata: Mapping[str, Any] = loaded.metadata
    width = artifact.output_width(
        path,
        loaded.session,
        VALUE_OUTPUT,
        f"name the regressor's output {VALUE_OUTPUT!r} when exporting it",
    )
    if width not in (None, 1):
        raise ModelError(
            path,
            f"the {VALUE_OUTPUT!r} output gives {width} values per instance:"
            " a regressor gives one",
        )
    for example in metadata["examples"]:
        if not (
            isinstance(example, dict)
            and isinstance(example.get("features"), dict)
            and list(example["features"]) == metadata["feature_names"]
            and isinstance(example.get("value"), int | float)
        ):
            raise ModelError(path, f"malformed example {example!r}")
