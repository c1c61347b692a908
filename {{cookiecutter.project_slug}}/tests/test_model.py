import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app import model
from tests.conftest import SETOSA, VIRGINICA


@pytest.fixture(scope="module")
def iris() -> model.Model:
    return model.load()


@pytest.fixture
def artifact() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(model.DEFAULT_MODEL_PATH.read_text())
    return data


def write(path: Path, artifact: dict[str, Any]) -> Path:
    path.write_text(json.dumps(artifact))
    return path


def test_load_reads_packaged_artifact(iris: model.Model) -> None:
    assert iris.feature_names == tuple(SETOSA)
    assert iris.classes == ("setosa", "versicolor", "virginica")
    assert iris.training["accuracy"] > 0.9


def test_predict_setosa(iris: model.Model) -> None:
    prediction = iris.predict(model.Features(**SETOSA))
    assert prediction.label == "setosa"
    assert prediction.probabilities["setosa"] > 0.9


def test_predict_virginica(iris: model.Model) -> None:
    assert iris.predict(model.Features(**VIRGINICA)).label == "virginica"


def test_predict_probabilities_sum_to_one(iris: model.Model) -> None:
    prediction = iris.predict(model.Features(**VIRGINICA))
    assert set(prediction.probabilities) == set(iris.classes)
    assert math.isclose(sum(prediction.probabilities.values()), 1.0)


@pytest.mark.parametrize(
    "value", [0, -1.0, 100.5, math.nan, math.inf, True, "5.1", None]
)
def test_features_reject_values_outside_centimetre_range(value: object) -> None:
    with pytest.raises(ValidationError, match="sepal_length"):
        model.Features(**{**SETOSA, "sepal_length": value})


def test_load_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(model.ModelError, match=r"absent\.json"):
        model.load(path)


def test_load_rejects_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("{not json")
    with pytest.raises(model.ModelError, match="not valid JSON"):
        model.load(path)


def test_load_rejects_checksum_mismatch(
    tmp_path: Path, artifact: dict[str, Any]
) -> None:
    artifact["intercepts"][0] += 1.0
    with pytest.raises(model.ModelError, match="checksum mismatch"):
        model.load(write(tmp_path / "model.json", artifact))


def test_load_rejects_weights_of_wrong_shape(
    tmp_path: Path, artifact: dict[str, Any]
) -> None:
    artifact["coefficients"][0].pop()
    artifact["sha256"] = model.checksum(artifact)
    with pytest.raises(model.ModelError, match="do not fit 3 classes x 4 features"):
        model.load(write(tmp_path / "model.json", artifact))


def test_load_rejects_unknown_format(tmp_path: Path, artifact: dict[str, Any]) -> None:
    artifact["format"] = "pickle"
    with pytest.raises(model.ModelError, match="format 'pickle'"):
        model.load(write(tmp_path / "model.json", artifact))
