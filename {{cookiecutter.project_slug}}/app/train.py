"""Train the sample model and export it to ONNX: ``python -m app.train``.

Needs the optional ``train`` dependency group (``poetry install --with train``).
The Iris data ships inside scikit-learn, so training works offline, and the fit
is deterministic: running this reproduces the packaged ``model.onnx``.

To serve another scikit-learn classifier, change ``load_data`` and
``build_pipeline`` (and the name and version below), make ``app.model.Features``
list the data's columns in order, and run this again.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from app.model import (
    CHECKSUM_PLACEHOLDER,
    DEFAULT_MODEL_PATH,
    Features,
    checksum,
)

MODEL_NAME = "iris-logistic-regression"
MODEL_VERSION = "2.0.0"
CROSS_VALIDATION_FOLDS = 5


class Dataset(NamedTuple):
    """Training data: one row per instance, columns in the order of Features."""

    description: str
    data: np.ndarray[Any, Any]
    target: np.ndarray[Any, Any]  # the index of each row's class in ``classes``
    classes: list[str]


def load_data() -> Dataset:
    """The Iris measurements, in centimetres, and their species."""
    iris = load_iris()
    return Dataset(
        description="Iris (scikit-learn load_iris)",
        data=iris.data,
        target=iris.target,
        classes=[str(name) for name in iris.target_names],
    )


def build_pipeline() -> Pipeline:
    """The estimator to fit: any scikit-learn classifier skl2onnx converts."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def fit(dataset: Dataset) -> Pipeline:
    feature_names = list(Features.model_fields)
    if dataset.data.shape[1] != len(feature_names):
        raise SystemExit(
            f"ERROR: the data has {dataset.data.shape[1]} columns but Features"
            f" has {len(feature_names)} fields ({', '.join(feature_names)})"
        )
    return build_pipeline().fit(dataset.data, dataset.target)


def export(pipeline: Pipeline, dataset: Dataset) -> onnx.ModelProto:
    """Convert the fitted pipeline to ONNX: one float input, class probabilities
    as a plain tensor (zipmap off) so that a batch is one array."""
    sample = dataset.data[:1].astype(np.float32)
    model: onnx.ModelProto = to_onnx(pipeline, sample, options={"zipmap": False})
    return model


def describe(pipeline: Pipeline, dataset: Dataset) -> dict[str, Any]:
    """How the model was trained and how well it scores."""
    cv_scores = cross_val_score(
        build_pipeline(), dataset.data, dataset.target, cv=CROSS_VALIDATION_FOLDS
    )
    return {
        "dataset": dataset.description,
        "samples": len(dataset.target),
        "estimator": " ".join(repr(pipeline).split()),
        "accuracy": round(float(pipeline.score(dataset.data, dataset.target)), 4),
        "cross_validation_accuracy": round(float(cv_scores.mean()), 4),
        "cross_validation_folds": CROSS_VALIDATION_FOLDS,
        "libraries": {
            "python": platform.python_version(),
            **{
                name: version(name)
                for name in ("numpy", "scikit-learn", "skl2onnx", "onnx")
            },
        },
    }


def pick_examples(
    pipeline: Pipeline, dataset: Dataset, feature_names: Sequence[str]
) -> list[dict[str, Any]]:
    """For each class, the first training row of it that the model gets right."""
    predicted = pipeline.predict(dataset.data)
    examples = []
    for index, label in enumerate(dataset.classes):
        for row, target, guess in zip(
            dataset.data, dataset.target, predicted, strict=True
        ):
            if target == guess == index:
                values = (float(value) for value in row)
                features = dict(zip(feature_names, values, strict=True))
                examples.append({"features": features, "label": label})
                break
    return examples


def save(
    model: onnx.ModelProto,
    path: Path,
    *,
    name: str,
    version: str,
    feature_names: Sequence[str],
    classes: Sequence[str],
    training: dict[str, Any],
    examples: list[dict[str, Any]],
) -> None:
    """Write ``model`` with the metadata and checksum that ``app.model.load``
    verifies. Works for any ONNX classifier with a ``probabilities`` output."""
    metadata = {
        "name": name,
        "version": version,
        "feature_names": json.dumps(list(feature_names)),
        "classes": json.dumps(list(classes)),
        "training": json.dumps(training),
        "examples": json.dumps(examples),
        "sha256": CHECKSUM_PLACEHOLDER,
    }
    onnx.helper.set_model_props(model, metadata)
    data = model.SerializeToString()
    path.write_bytes(
        data.replace(CHECKSUM_PLACEHOLDER.encode(), checksum(data).encode())
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_MODEL_PATH,
        help="where to write the artifact (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    dataset = load_data()
    pipeline = fit(dataset)
    training = describe(pipeline, dataset)
    feature_names = list(Features.model_fields)
    save(
        export(pipeline, dataset),
        args.output,
        name=MODEL_NAME,
        version=MODEL_VERSION,
        feature_names=feature_names,
        classes=dataset.classes,
        training=training,
        examples=pick_examples(pipeline, dataset, feature_names),
    )
    print(f"wrote {args.output} (training accuracy {training['accuracy']})")


if __name__ == "__main__":
    main()
