import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import artifact, model
from app.config import Settings
from app.main import create_app

# The one place these tests learn what is served: the packaged model's feature
# names and example rows (picked by app.train from the training data), so they
# hold for any model without edits.
MODEL = model.load()
FEATURE_NAMES = MODEL.feature_names
FIRST, LAST = MODEL.examples[0], MODEL.examples[-1]
# The body of a POST /predict of the first example, as a client writes it.
PREDICT = json.dumps(FIRST.features).encode()


def approximately(value: Any) -> Any:
    """``value``, each number in it compared within what float32 rounding
    allows: a model run of many rows may differ from a run of one in the last
    digits."""
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-5, abs=1e-6)
    if isinstance(value, dict):
        return {key: approximately(item) for key, item in value.items()}
    if isinstance(value, list):
        return [approximately(item) for item in value]
    return value


def predicted(features: dict[str, float]) -> Any:
    """The served model's answer for these features, as JSON, approximately."""
    prediction = MODEL.predict(model.Features(**features))
    return approximately(prediction.model_dump(mode="json"))


def resigned_artifact(old: bytes, new: bytes) -> bytes:
    """The packaged artifact with ``old`` replaced by ``new`` and a checksum that
    fits again: a file that is intact but no longer what the service expects."""
    data = model.DEFAULT_MODEL_PATH.read_bytes()
    digest = artifact.CHECKSUM_ENTRY.findall(data)[0]
    unsigned = data.replace(digest, artifact.CHECKSUM_PLACEHOLDER.encode())
    return artifact.sign(unsigned.replace(old, new))


def post_head(path: str, length: int, version: str = "1.1") -> bytes:
    """The head of a JSON POST of ``length`` bytes, as a client writes it."""
    return (
        f"POST {path} HTTP/{version}\r\nHost: test\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture
def settings() -> Settings:
    # Ignore a developer's .env so the tests see the documented defaults.
    return Settings(_env_file=None)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    # The model loaded once above: loading it is not what these tests test.
    with TestClient(create_app(settings, MODEL)) as client:
        yield client
