"""The model: an ONNX artifact run by ONNX Runtime, and the features it takes.

The sample is an Iris classifier: a scikit-learn pipeline exported to ONNX by
``python -m app.train``. Loading it runs no code and serving it needs no
scikit-learn. The artifact carries its own metadata (name, version, feature
names, classes, training scores, example rows and a checksum), which ``load``
verifies, along with ``Features`` against the model's input.

To serve your own classifier, replace ``Features`` here and the artifact beside
this file (the README's "Use your own model" says how); the HTTP layer relies
only on ``load``, ``Model``, ``Features`` and ``Prediction``.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np
import onnxruntime
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL_PATH = Path(__file__).with_name("model.onnx")
# The output a classifier exported with skl2onnx (zipmap off) names its class
# probabilities: a float tensor of one row per instance, one column per class.
PROBABILITIES_OUTPUT = "probabilities"
# The keys of the artifact's metadata: plain text, then JSON.
TEXT_METADATA_KEYS = ("name", "version", "sha256")
JSON_METADATA_KEYS = ("feature_names", "classes", "training", "examples")
# The checksum is a SHA-256 of the whole file, taken while its own value was
# this placeholder (same length, so the file's layout does not change).
CHECKSUM_PLACEHOLDER = "0" * 64
# The checksum's metadata entry as ONNX's protobuf encoding writes it: the key
# "sha256" (6 bytes), then its value (64 bytes, "@"), so it can be found, and
# checked, before the file is parsed.
CHECKSUM_ENTRY = re.compile(rb"\n\x06sha256\x12@([0-9a-f]{64})")
INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}

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


class Example(NamedTuple):
    """A row of the training data and the class the model gives it."""

    features: dict[str, float]
    label: str


class ModelError(Exception):
    """The model artifact is missing, unreadable, corrupt or does not fit."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"cannot load model from '{path}': {problem}")
        self.path = path
        self.problem = problem


class Model:
    """A classifier in an ONNX Runtime session, with its metadata."""

    def __init__(
        self, session: onnxruntime.InferenceSession, metadata: Mapping[str, Any]
    ) -> None:
        self.name: str = metadata["name"]
        self.version: str = metadata["version"]
        self.feature_names: tuple[str, ...] = tuple(metadata["feature_names"])
        self.classes: tuple[str, ...] = tuple(metadata["classes"])
        self.training: dict[str, Any] = dict(metadata["training"])
        self.examples: tuple[Example, ...] = tuple(
            Example(dict(example["features"]), str(example["label"]))
            for example in metadata["examples"]
        )
        self._session = session
        model_input = session.get_inputs()[0]
        self._input_name: str = model_input.name
        self._input_dtype = INPUT_DTYPES[model_input.type]
        self._values = operator.attrgetter(*self.feature_names)

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
) -> Model:
    """Read and verify the artifact at ``path``; check ``features`` against it.

    ``threads`` is ONNX Runtime's intra-op thread count for this session.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(path, error.strerror or str(error)) from error
    # Checked before ONNX Runtime parses anything, so that a damaged file is
    # refused in one line rather than half-loaded.
    _verify_checksum(path, data)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # its errors come back as the exception
    try:
        session = onnxruntime.InferenceSession(
            data, options, providers=["CPUExecutionProvider"], enable_fallback=False
        )
    except Exception as error:  # ONNX Runtime raises its own, undocumented types
        problem = " ".join(str(error).split())
        raise ModelError(path, f"ONNX Runtime cannot run it ({problem})") from error
    metadata = _read_metadata(path, session.get_modelmeta().custom_metadata_map)
    _check_signature(path, session, metadata)
    _check_features(path, features, metadata["feature_names"])
    return Model(session, metadata)


def checksum(data: bytes, digest: str = CHECKSUM_PLACEHOLDER) -> str:
    """SHA-256 of an artifact whose checksum metadata holds ``digest``."""
    unsigned = data.replace(digest.encode(), CHECKSUM_PLACEHOLDER.encode())
    return hashlib.sha256(unsigned).hexdigest()


def _verify_checksum(path: Path, data: bytes) -> None:
    found = CHECKSUM_ENTRY.findall(data)
    if len(found) != 1:
        raise ModelError(
            path,
            "no sha256 in its metadata: not an artifact written by app.train.save",
        )
    digest = found[0].decode()
    if data.count(found[0]) != 1 or checksum(data, digest) != digest:
        raise ModelError(path, "checksum mismatch: the file was changed or damaged")


def _read_metadata(path: Path, raw: Mapping[str, str]) -> dict[str, Any]:
    missing = [
        key for key in (*TEXT_METADATA_KEYS, *JSON_METADATA_KEYS) if key not in raw
    ]
    if missing:
        raise ModelError(
            path,
            f"missing metadata: {', '.join(missing)} (write it with app.train.save)",
        )
    try:
        metadata = {key: json.loads(raw[key]) for key in JSON_METADATA_KEYS}
    except ValueError as error:
        raise ModelError(path, f"metadata is not valid JSON ({error})") from error
    return {"name": raw["name"], "version": raw["version"], **metadata}


def _check_signature(
    path: Path, session: onnxruntime.InferenceSession, metadata: Mapping[str, Any]
) -> None:
    feature_names, classes = metadata["feature_names"], metadata["classes"]
    if not _is_list_of_text(feature_names) or not _is_list_of_text(classes):
        raise ModelError(path, "feature_names and classes must be lists of text")
    if not isinstance(metadata["training"], dict):
        raise ModelError(path, "training must be a JSON object")
    if not isinstance(metadata["examples"], list):
        raise ModelError(path, "examples must be a JSON list")
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type not in INPUT_DTYPES:
        found = ", ".join(f"{i.name}: {i.type}" for i in inputs)
        raise ModelError(
            path, f"expected one tensor(float) or tensor(double) input, found {found}"
        )
    width = inputs[0].shape[-1]
    if isinstance(width, int) and width != len(feature_names):
        raise ModelError(
            path,
            f"the input takes {width} features but feature_names lists"
            f" {len(feature_names)}",
        )
    outputs = {output.name: output for output in session.get_outputs()}
    if PROBABILITIES_OUTPUT not in outputs:
        raise ModelError(
            path,
            f"no {PROBABILITIES_OUTPUT!r} output (found {', '.join(outputs)});"
            " export classifiers with zipmap off",
        )
    columns = outputs[PROBABILITIES_OUTPUT].shape[-1]
    if isinstance(columns, int) and columns != len(classes):
        raise ModelError(
            path,
            f"the model gives {columns} probabilities but classes lists {len(classes)}",
        )
    for example in metadata["examples"]:
        if not (
            isinstance(example, dict)
            and isinstance(example.get("features"), dict)
            and list(example["features"]) == feature_names
            and example.get("label") in classes
        ):
            raise ModelError(path, f"malformed example {example!r}")


def _check_features(
    path: Path, features: type[BaseModel], feature_names: Sequence[str]
) -> None:
    fields = tuple(features.model_fields)
    if fields != tuple(feature_names):
        raise ModelError(
            path,
            f"{features.__name__} has fields ({', '.join(fields)}) but the model"
            f" takes ({', '.join(feature_names)}), in that order",
        )
    for name, field in features.model_fields.items():
        if field.annotation not in (float, int):
            raise ModelError(
                path,
                f"{features.__name__}.{name} is {field.annotation!r} but the model"
                " takes numbers: declare it float",
            )


def _is_list_of_text(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
