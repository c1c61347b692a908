import math

import pytest

from app import model

train = pytest.importorskip(
    "app.train", reason="needs the train group: poetry install --with train"
)


def test_training_reproduces_packaged_artifact() -> None:
    packaged = model.load()
    artifact = train.train()
    assert artifact["feature_names"] == list(packaged.feature_names)
    assert artifact["classes"] == list(packaged.classes)
    assert artifact["training"]["accuracy"] == packaged.training["accuracy"]
    retrained = model.Model(artifact)
    for row in ([5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.7, 3.0, 5.2, 2.3]):
        features = model.Features(**dict(zip(packaged.feature_names, row, strict=True)))
        new, old = retrained.predict(features), packaged.predict(features)
        assert new.label == old.label
        for label, probability in new.probabilities.items():
            assert math.isclose(probability, old.probabilities[label], abs_tol=1e-6)
