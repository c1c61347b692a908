"""The model: an ONNX classifier run by ONNX Runtime, and the features it takes.

The sample is an Iris classifier: a scikit-learn pipeline exported to ONNX by
``python -m app.train``. Loading it runs no code and serving it needs no
scikit-learn. The artifact carries its own metadata (name, version, task,
feature names, classes, training scores, example rows and a checksum), which
``load`` verifies, along with ``Features`` against the model's input.

To serve your own classifier, replace ``Features`` here and the artifact beside
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

TASK = "classification"
# The output a classifier exported with skl2onnx (zipmap off) names its class
# probabilities: a float tensor of one row per instance, one column per class.
PROBABILITIES_OUTPUT = "probabilities"

# Each measurement is a length in centimetres: finite, positive and at most 100.
Centimetres = Annotated[float, Field(gt=0, le=100, strict=True, allow_inf_nan=False)]


class Features(BaseModel):
    """One flower's measurements, in centimetres.

    The fields are the model's inputs, named and ordered as the artifact's
    ``feature_names``: the service refuses to start when they differ.
    """

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

    label: str
    probabilities: dict[str, float]


class Tensor(NamedTuple):
    """An output of the model as a tensor: its element type, as the Open
    Inference Protocol names it, and its shape for one instance."""

    datatype: str
    shape: tuple[int, ...]


class Example(NamedTuple):
    """A row of the training data and the class the model gives it."""

    features: dict[str, float]
    label: str


class ModelInfo(BaseModel):
    """What is being served and how it was trained."""

    name: str
    version: str
    task: str
    feature_names: list[str]
    classes: list[str]
    training: dict[str, Any]


class Model:
    """A classifier in an ONNX Runtime session, with its metadata."""

    def __init__(self, loaded: artifact.Artifact) -> None:
        metadata = loaded.metadata
        self.name: str = metadata["name"]
        self.version: str = metadata["version"]
        self.feature_names: tuple[str, ...] = tuple(metadata["feature_names"])
        self.classes: tuple[str, ...] = tuple(metadata["classes"])
        self.training: dict[str, Any] = dict(metadata["training"])
        self.examples: tuple[Example, ...] = tuple(
            Example(dict(example["features"]), str(example["label"]))
            for example in metadata["examples"]
        )
        # The outputs as tensors, for the Open Inference Protocol.
        self.outputs = {
            "label": Tensor("BYTES", ()),
            "probabilities": Tensor("FP32", (len(self.classes),)),
        }
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
            classes=list(self.classes),
            training=self.training,
        )

    def tensors(self, predictions: Sequence[Prediction]) -> dict[str, list[Any]]:
        """Each output of these predictions as one row-major list of values."""
        return {
            "label": [p.label for p in predictions],
            "probabilities": [
                value for p in predictions for value in p.probabilities.values()
            ],
        }

    def predict(self, features: Features) -> Prediction:
        return self.predict_batch([features])[0]

    def predict_batch(self, instances: Sequence[Features]) -> list[Prediction]:
        """Predict every instance with one run of the model."""
        inputs = self._pre_process(instances)
        probabilities = self._predict(inputs)
        return self._post_process(probabilities)

    def _pre_process(self, instances: Sequence[Features]) -> np.ndarray[Any, Any]:
        rows = [self._values(features) for features in instances]
        # attrgetter of one name returns the value, not a one-value tuple.
        return np.array(rows, dtype=self._input_dtype).reshape(len(rows), -1)

    def _predict(self, inputs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        outputs = self._session.run([PROBABILITIES_OUTPUT], {self._input_name: inputs})
        return np.asarray(outputs[0])

    def _post_process(self, probabilities: np.ndarray[Any, Any]) -> list[Prediction]:
        labels = probabilities.argmax(axis=1).tolist()
        return [
            Prediction(
                label=self.classes[label],
                probabilities=dict(zip(self.classes, row, strict=True)),
            )
            for label, row in zip(labels, probabilities.tolist(), strict=True)
        ]


def load(
    path: Path = DEFAULT_MODEL_PATH,
    *,
    features: type[BaseModel] = Features,
    threads: int = 1,
    max_bytes: int = 1024**3,
) -> Model:
    """Read and verify the classifier at ``path``; check ``features`` against it.

    ``threads`` is ONNX Runtime's intra-op thread count for this session; a
    file over ``max_bytes`` is refused before it is read.
    """
    loaded = artifact.read(
        path, task=TASK, json_keys=("classes",), threads=threads, max_bytes=max_bytes
    )
    _check_outputs(path, loaded)
    artifact.check_features(path, features, loaded.metadata["feature_names"])
    return Model(loaded)


def _check_outputs(path: Path, loaded: artifact.Artifact) -> None:
    metadata: Mapping[str, Any] = loaded.metadata
    classes = metadata["classes"]
    if not artifact.is_list_of_text(classes):
        raise ModelError(path, "classes must be a list of text")
    columns = artifact.output_width(
        path, loaded.session, PROBABILITIES_OUTPUT, "export classifiers with zipmap off"
    )
    if isinstance(columns, int) and columns != len(classes):
        raise ModelError(
            path,
            f"the model gives {columns} probabilities but classes lists {len(classes)}",
        )
    if columns is None:
        raise ModelError(
            path,
            f"the {PROBABILITIES_OUTPUT!r} output has one axis: a classifier gives"
            " one row of probabilities per instance",
        )
    for example in metadata["examples"]:
        if not (
            isinstance(example, dict)
            and isinstance(example.get("features"), dict)
            and list(example["features"]) == metadata["feature_names"]
            and example.get("label") in classes
        ):
            raise ModelError(path, f"malformed example {example!r}")
