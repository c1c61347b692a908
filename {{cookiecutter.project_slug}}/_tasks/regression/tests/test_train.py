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

# ONNX Runtime computes in float32: about seven significant digits.
RELATIVE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def dataset() -> train.Dataset:
    return train.load_data()


def predict_rows(served: model.Model, rows: np.ndarray) -> np.ndarray:
    instances = [
        model.Features(**dict(zip(FEATURE_NAMES, map(float, row), strict=True)))
        for row in rows
    ]
    return np.array([p.value for p in served.predict_batch(instances)])


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
        target=dataset.target_name,
        training={},
        examples=[],
    )
    served = predict_rows(model.load(path), dataset.data)
    expected = train.predict(fitted, dataset.data)
    # Relative to the spread of the target, so that values near zero do not
    # ask for more digits than float32 has.
    scale = float(np.abs(expected).max())
    assert np.abs(served - expected).max() <= RELATIVE_TOLERANCE * scale


def test_retraining_reproduces_the_packaged_predictions(
    dataset: train.Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "model.onnx"
    train.main(["--output", str(output)])
    assert f"wrote {output}" in capsys.readouterr().out
    retrained = model.load(output)
    assert (retrained.name, retrained.version) == (MODEL.name, MODEL.version)
    assert retrained.target == MODEL.target
    # The same rows; their values as the training library computes them, which
    # may differ in the last digit from one build of it to another.
    assert [e.features for e in retrained.examples] == [
        e.features for e in MODEL.examples
    ]
    np.testing.assert_allclose(
        [e.value for e in retrained.examples],
        [e.value for e in MODEL.examples],
        rtol=1e-9,
    )
    new = predict_rows(retrained, dataset.data)
    old = predict_rows(MODEL, dataset.data)
    np.testing.assert_allclose(new, old, rtol=1e-6)
