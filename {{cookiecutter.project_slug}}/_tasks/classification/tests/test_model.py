import math
from pathlib import Path
from typing import Any

import onnxruntime
import pytest
from pydantic import ValidationError

from app import model
from tests.conftest import FEATURE_NAMES, MODEL, resigned_artifact

BOUND_OFFSETS = {
    "exclusiveMinimum": 0,
    "minimum": -1,
    "exclusiveMaximum": 0,
    "maximum": 1,
}


def out_of_bounds() -> list[tuple[str, float]]:
    """Each field with each value just outside the bounds Features declares."""
    properties = model.Features.model_json_schema()["properties"]
    return [
        (name, properties[name][bound] + offset)
        for name in FEATURE_NAMES
        for bound, offset in BOUND_OFFSETS.items()
        if bound in properties[name]
    ]


def test_load_reads_packaged_artifact() -> None:
    assert tuple(model.Features.model_fields) == FEATURE_NAMES
    assert len(set(MODEL.classes)) == len(MODEL.classes) >= 2
    assert {example.label for example in MODEL.examples} <= set(MODEL.classes)
    assert MODEL.info().classes == list(MODEL.classes)


@pytest.mark.parametrize("example", MODEL.examples, ids=lambda e: e.label)
def test_predict_gives_each_example_its_class(example: model.Example) -> None:
    prediction = MODEL.predict(model.Features(**example.features))
    assert prediction.label == example.label
    assert set(prediction.probabilities) == set(MODEL.classes)
    assert math.isclose(sum(prediction.probabilities.values()), 1.0, rel_tol=1e-5)
    assert prediction.probabilities[example.label] == max(
        prediction.probabilities.values()
    )


def test_predict_batch_runs_the_model_once_for_all_instances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    run = onnxruntime.InferenceSession.run

    def counting_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return run(self, *args, **kwargs)

    instances = [model.Features(**e.features) for e in MODEL.examples] * 5
    singles = [MODEL.predict(features) for features in instances]
    monkeypatch.setattr(onnxruntime.InferenceSession, "run", counting_run)
    batch = MODEL.predict_batch(instances)
    assert len(calls) == 1
    assert [p.label for p in batch] == [p.label for p in singles]
    for one, many in zip(singles, batch, strict=True):
        for label, probability in one.probabilities.items():
            assert math.isclose(probability, many.probabilities[label], abs_tol=1e-6)


def test_features_examples_in_the_docs_are_valid() -> None:
    examples = model.Features.model_json_schema()["examples"]
    assert examples
    for example in examples:
        assert MODEL.predict(model.Features(**example)).label in MODEL.classes


@pytest.mark.parametrize("name", FEATURE_NAMES)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "5.1", None])
def test_features_reject_values_that_are_not_finite_numbers(
    name: str, value: object
) -> None:
    with pytest.raises(ValidationError, match=name):
        model.Features(**{**MODEL.examples[0].features, name: value})


@pytest.mark.parametrize(("name", "value"), out_of_bounds())
def test_features_reject_values_outside_declared_bounds(
    name: str, value: float
) -> None:
    with pytest.raises(ValidationError, match=name):
        model.Features(**{**MODEL.examples[0].features, name: value})


def test_load_rejects_classifier_exported_without_probabilities(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(resigned_artifact(b"probabilities", b"probabilitiez"))
    with pytest.raises(model.ModelError, match="no 'probabilities' output"):
        model.load(path)


def test_load_runs_on_the_given_number_of_threads() -> None:
    loaded = model.load(threads=2)
    example = MODEL.examples[0]
    assert loaded.predict(model.Features(**example.features)).label == example.label
