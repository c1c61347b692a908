from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app import model
from app.config import Settings
from app.main import create_app

# The one place these tests learn what is served: the packaged model's feature
# names, classes and example rows (one per class, picked by app.train from the
# training data), so they hold for any model without edits.
MODEL = model.load()
FEATURE_NAMES = MODEL.feature_names
FIRST, LAST = MODEL.examples[0], MODEL.examples[-1]


def resigned_artifact(old: bytes, new: bytes) -> bytes:
    """The packaged artifact with ``old`` replaced by ``new`` and a checksum that
    fits again: a file that is intact but no longer what the service expects."""
    data = model.DEFAULT_MODEL_PATH.read_bytes()
    digest = model.CHECKSUM_ENTRY.findall(data)[0]
    unsigned = data.replace(digest, model.CHECKSUM_PLACEHOLDER.encode())
    altered = unsigned.replace(old, new)
    return altered.replace(
        model.CHECKSUM_PLACEHOLDER.encode(), model.checksum(altered).encode()
    )


@pytest.fixture
def settings() -> Settings:
    # Ignore a developer's .env so the tests see the documented defaults.
    return Settings(_env_file=None)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    # The model loaded once above: loading it is not what these tests test.
    with TestClient(create_app(settings, MODEL)) as client:
        yield client
