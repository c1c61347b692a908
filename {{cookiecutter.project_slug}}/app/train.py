"""Train the sample model and write its artifact: ``python -m app.train``.

Needs the optional ``train`` dependency group (``poetry install --with train``).
The Iris data ships inside scikit-learn, so training works offline, and the
fit is deterministic: running this reproduces the packaged ``model.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from app.model import ARTIFACT_FORMAT, DEFAULT_MODEL_PATH, checksum

FEATURE_NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
MODEL_NAME = "iris-logistic-regression"
MODEL_VERSION = "1.0.0"
CROSS_VALIDATION_FOLDS = 5


def train() -> dict[str, Any]:
    """Fit the classifier on the Iris data and describe it as an artifact."""
    iris = load_iris()
    estimator = LogisticRegression(max_iter=1000)
    cv_scores = cross_val_score(
        estimator, iris.data, iris.target, cv=CROSS_VALIDATION_FOLDS
    )
    estimator.fit(iris.data, iris.target)
    artifact: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "classes": [str(name) for name in iris.target_names],
        "coefficients": estimator.coef_.tolist(),
        "intercepts": estimator.intercept_.tolist(),
        "training": {
            "dataset": "Iris (scikit-learn load_iris)",
            "samples": len(iris.target),
            "estimator": "sklearn.linear_model.LogisticRegression(max_iter=1000)",
            "accuracy": round(estimator.score(iris.data, iris.target), 4),
            "cross_validation_accuracy": round(cv_scores.mean(), 4),
            "cross_validation_folds": CROSS_VALIDATION_FOLDS,
            "libraries": {
                "python": platform.python_version(),
                "numpy": version("numpy"),
                "scikit-learn": version("scikit-learn"),
            },
        },
    }
    artifact["sha256"] = checksum(artifact)
    return artifact


def write(artifact: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(artifact, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_MODEL_PATH,
        help="where to write the artifact (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    artifact = train()
    write(artifact, args.output)
    accuracy = artifact["training"]["accuracy"]
    print(f"wrote {args.output} (training accuracy {accuracy})")


if __name__ == "__main__":
    main()
