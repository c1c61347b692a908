"""Train the sample model and export it to ONNX: ``python -m app.train``.

Needs the optional ``train`` dependency group (``poetry install --with train``).
The Iris data ships inside scikit-learn, so training works offline, and the fit
is deterministic: running this reproduces the packaged ``model.onnx``.

To serve another classifier, change ``load_data``, ``build_pipeline`` (and, for
a framework other than scikit-learn, ``fit``, ``predict_proba`` and ``export``)
and the name and version below, make ``app.model.Features`` list the data's
columns in order, and run this again. The README's "Use your own model" shows
each of scikit-learn, XGBoost, LightGBM and PyTorch.
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
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from app import artifact
from app.model import DEFAULT_MODEL_PATH, TASK, Features

MODEL_NAME = "iris-logistic-regression"
MODEL_VERSION = "2.0.0"
# The share of the data held out to score the model, and the seed that picks it.
HELD_OUT = 0.25
SEED = 0
# The libraries whose versions the artifact records.
LIBRARIES = ("numpy", "scikit-learn", "skl2onnx", "onnx")


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


def fit(dataset: Dataset) -> Any:
    """The model, fitted on every row of ``dataset``."""
    return build_pipeline().fit(dataset.data, dataset.target)


def predict_proba(fitted: Any, data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The fitted model's own probabilities, one column per class: what ONNX
    Runtime must reproduce from the exported artifact."""
    return np.asarray(fitted.predict_proba(data))


def export(fitted: Any, dataset: Dataset) -> onnx.ModelProto:
    """Convert the fitted pipeline to ONNX: one float input, class probabilities
    as a plain tensor (zipmap off) so that a batch is one array."""
    sample = dataset.data[:1].astype(np.float32)
    model: onnx.ModelProto = to_onnx(fitted, sample, options={"zipmap": False})
    return model


def describe(fitted: Any, dataset: Dataset) -> dict[str, Any]:
    """How the model was trained, and its accuracy on data it was not fitted on
    (the same model, fitted again without the held-out rows)."""
    train_rows, test_rows, train_target, test_target = train_test_split(
        dataset.data,
        dataset.target,
        test_size=HELD_OUT,
        random_state=SEED,
        stratify=dataset.target,
    )
    held_out = fit(dataset._replace(data=train_rows, target=train_target))
    guesses = predict_proba(held_out, test_rows).argmax(axis=1)
    return {
        "dataset": dataset.description,
        "samples": len(dataset.target),
        "estimator": " ".join(repr(fitted).split()),
        "held_out_accuracy": round(float(np.mean(guesses == test_target)), 4),
        "held_out_samples": len(test_target),
        "libraries": {
            "python": platform.python_version(),
            **{name: version(name) for name in LIBRARIES},
        },
    }


def pick_examples(
    fitted: Any, dataset: Dataset, feature_names: Sequence[str]
) -> list[dict[str, Any]]:
    """For each class, the first training row of it that the model gets right."""
    predicted = predict_proba(fitted, dataset.data).argmax(axis=1)
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
    verifies. Works for any ONNX classifier with one float input of shape
    [N, len(feature_names)] and a ``probabilities`` output of shape
    [N, len(classes)]. ``training`` is any JSON object (``/model`` shows it);
    each of ``examples`` is ``{"features": {name: value}, "label": class}``."""
    metadata = {
        "name": name,
        "version": version,
        "task": TASK,
        "feature_names": json.dumps(list(feature_names)),
        "classes": json.dumps(list(classes)),
        "training": json.dumps(training),
        "examples": json.dumps(examples),
        "sha256": artifact.CHECKSUM_PLACEHOLDER,
    }
    onnx.helper.set_model_props(model, metadata)
    path.write_bytes(artifact.sign(model.SerializeToString()))


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
    feature_names = list(Features.model_fields)
    if dataset.data.shape[1] != len(feature_names):
        raise SystemExit(
            f"ERROR: the data has {dataset.data.shape[1]} columns but Features"
            f" has {len(feature_names)} fields ({', '.join(feature_names)})"
        )
    fitted = fit(dataset)
    training = describe(fitted, dataset)
    save(
        export(fitted, dataset),
        args.output,
        name=MODEL_NAME,
        version=MODEL_VERSION,
        feature_names=feature_names,
        classes=dataset.classes,
        training=training,
        examples=pick_examples(fitted, dataset, feature_names),
    )
    print(f"wrote {args.output} (held-out accuracy {training['held_out_accuracy']})")


if __name__ == "__main__":
    main()
