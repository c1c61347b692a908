"""Training and export: needs the train group (poetry install --with train)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app import model
from tests.conftest import FEATURE_NAMES, MODEL

try:
    from app import train
except ModuleNotFoundError as error:  # a training library, not this project
    if (error.name or "app").split(".")[0] == "app":
        raise
    pytest.skip(
        f"needs {error.name}: add it to the train group and run"
        " poetry install --with train",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def dataset() -> train.Dataset:
    return train.load_data()


def predict_rows(served: model.Model, rows: np.ndarray) -> list[model.Prediction]:
    instances = [
        model.Features(**dict(zip(FEATURE_NAMES, map(float, row), strict=True)))
        for row in rows
    ]
    return served.predict_batch(instances)


def test_onnx_agrees_with_the_trained_model_on_every_training_row(
    dataset: train.Dataset, tmp_path: Path
) -> None:
    fitted = train.fit(dataset)
    path = tmp_path / "model.onnx"
    train.save(
        train.export(fitted, dataset),
        path,
        name="parity",
        version="0",
        feature_names=FEATURE_NAMES,
        classes=dataset.classes,
        training={},
        examples=[],
    )
    predictions = predict_rows(model.load(path), dataset.data)
    expected = train.predict_proba(fitted, dataset.data)
    labels = [dataset.classes[index] for index in expected.argmax(axis=1)]
    assert [p.label for p in predictions] == labels
    served = np.array(
        [[p.probabilities[label] for label in dataset.classes] for p in predictions]
    )
    assert np.abs(served - expected).max() <= 1e-5


def test_retraining_reproduces_the_packaged_predictions(
    dataset: train.Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "model.onnx"
    train.main(["--output", str(output)])
    assert f"wrote {output}" in capsys.readouterr().out
    retrained = model.load(output)
    assert (retrained.name, retrained.version) == (MODEL.name, MODEL.version)
    assert retrained.classes == MODEL.classes
    assert retrained.examples == MODEL.examples
    new = predict_rows(retrained, dataset.data)
    old = predict_rows(MODEL, dataset.data)
    assert [p.label for p in new] == [p.label for p in old]
    for after, before in zip(new, old, strict=True):
        for label, probability in after.probabilities.items():
            assert abs(probability - before.probabilities[label]) <= 1e-6
