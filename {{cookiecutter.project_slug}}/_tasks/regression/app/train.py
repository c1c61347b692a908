"""Train the sample model and export it to ONNX: ``python -m app.train``.

Needs the optional ``train`` dependency group (``poetry install --with train``).
The diabetes data ships inside scikit-learn, so training works offline, and the
fit is deterministic: running this reproduces the packaged ``model.onnx``.

To serve another regressor, change ``load_data``, ``build_pipeline`` (and, for a
framework other than scikit-learn, ``fit``, ``predict`` and ``export``)
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
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from app import artifact
from app.model import DEFAULT_MODEL_PATH, TASK, Features

MODEL_NAME = "diabetes-ridge-regression"
MODEL_VERSION = "1.0.0"
# The share of the data held out to score the model, and the seed that picks it.
HELD_OUT = 0.25
SEED = 0
# The libraries whose versions the artifact records.
LIBRARIES = ("numpy", "scikit-learn", "skl2onnx", "onnx")


class Dataset(NamedTuple):
    """Training data: one row per instance, columns in the order of Features."""

    description: str
    data: np.ndarray[Any, Any]
    target: np.ndarray[Any, Any]  # each row's value of the target
    target_name: str


def load_data() -> Dataset:
    """Ten baseline measurements of diabetes patients, in their own units (not
    scaled), and how far the disease progressed a year later."""
    diabetes = load_diabetes(scaled=False)
    return Dataset(
        description="Diabetes (scikit-learn load_diabetes, scaled=False)",
        data=diabetes.data,
        target=diabetes.target,
        target_name="disease_progression",
    )


def build_pipeline() -> Pipeline:
    """The estimator to fit: any scikit-learn regressor skl2onnx converts."""
    return make_pipeline(StandardScaler(), Ridge(alpha=1.0))


def fit(dataset: Dataset) -> Any:
    """The model, fitted on every row of ``dataset``."""
    return build_pipeline().fit(dataset.data, dataset.target)


def predict(fitted: Any, data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The fitted model's own predictions, one value per row: what ONNX Runtime
    must reproduce from the exported artifact."""
    return np.asarray(fitted.predict(data)).reshape(len(data))


def export(fitted: Any, dataset: Dataset) -> onnx.ModelProto:
    """Convert the fitted pipeline to ONNX: one float input, and one output
    named ``value`` with a value per row."""
    sample = dataset.data[:1].astype(np.float32)
    model: onnx.ModelProto = to_onnx(
        fitted, sample, final_types=[("value", FloatTensorType([None, 1]))]
    )
    return model


def describe(fitted: Any, dataset: Dataset) -> dict[str, Any]:
    """How the model was trained, and how well it predicts data it was not
    fitted on (the same model, fitted again without the held-out rows): the
    coefficient of determination (R²) and the mean absolute error."""
    train_rows, test_rows, train_target, test_target = train_test_split(
        dataset.data, dataset.target, test_size=HELD_OUT, random_state=SEED
    )
    held_out = fit(dataset._replace(data=train_rows, target=train_target))
    guesses = predict(held_out, test_rows)
    return {
        "dataset": dataset.description,
        "samples": len(dataset.target),
        "estimator": " ".join(repr(fitted).split()),
        "held_out_r2": round(float(r2_score(test_target, guesses)), 4),
        "held_out_mae": round(float(mean_absolute_error(test_target, guesses)), 4),
        "held_out_samples": len(test_target),
        "libraries": {
            "python": platform.python_version(),
            **{name: version(name) for name in LIBRARIES},
        },
    }


def pick_examples(
    fitted: Any, dataset: Dataset, feature_names: Sequence[str]
) -> list[dict[str, Any]]:
    """The training rows the model gives its lowest, median and highest value,
    each with that value."""
    predicted = predict(fitted, dataset.data)
    order = np.argsort(predicted, kind="stable")
    picked = (order[0], order[len(order) // 2], order[-1])
    return [
        {
            "features": dict(
                zip(feature_names, map(float, dataset.data[index]), strict=True)
            ),
            "value": float(predicted[index]),
        }
        for index in picked
    ]


def save(
    model: onnx.ModelProto,
    path: Path,
    *,
    name: str,
    version: str,
    feature_names: Sequence[str],
    target: str,
    training: dict[str, Any],
    examples: list[dict[str, Any]],
) -> None:
    """Write ``model`` with the metadata and checksum that ``app.model.load``
    verifies. Works for any ONNX regressor with one float input of shape
    [N, len(feature_names)] and a ``value`` output of shape [N, 1] or [N];
    ``target`` names what it predicts. ``training`` is any JSON object
    (``/model`` shows it); each of ``examples`` is ``{"features": {name:
    value}, "value": predicted}``."""
    metadata = {
        "name": name,
        "version": version,
        "task": TASK,
        "feature_names": json.dumps(list(feature_names)),
        "target": target,
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
        target=dataset.target_name,
        training=training,
        examples=pick_examples(fitted, dataset, feature_names),
    )
    print(f"wrote {args.output} (held-out R² {training['held_out_r2']})")


if __name__ == "__main__":
    main()
