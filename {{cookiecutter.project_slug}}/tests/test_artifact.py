import os
from pathlib import Path

import pytest
from pydantic import create_model

from app import artifact, model
from tests.conftest import FEATURE_NAMES, resigned_artifact


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_load_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    with pytest.raises(model.ModelError, match=r"absent\.onnx"):
        model.load(path)


@pytest.mark.parametrize(
    "data",
    [b"{not onnx", b"", model.DEFAULT_MODEL_PATH.read_bytes()[:-20]],
    ids=["other-format", "empty", "truncated"],
)
def test_load_rejects_what_is_not_a_written_artifact(
    tmp_path: Path, data: bytes
) -> None:
    with pytest.raises(model.ModelError, match="no sha256 in its metadata"):
        model.load(write(tmp_path / "model.onnx", data))


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75])
def test_load_rejects_a_damaged_artifact(tmp_path: Path, where: float) -> None:
    data = bytearray(model.DEFAULT_MODEL_PATH.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    with pytest.raises(model.ModelError, match="checksum mismatch"):
        model.load(write(tmp_path / "model.onnx", bytes(data)))


def test_load_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(model.ModelError, match="not a regular file"):
            model.load(path)


def test_load_refuses_a_file_over_the_size_limit_before_reading_it() -> None:
    size = model.DEFAULT_MODEL_PATH.stat().st_size
    with pytest.raises(model.ModelError, match=f"{size} bytes, over the limit"):
        model.load(max_bytes=size - 1)
    assert model.load(max_bytes=size).name


def test_load_refuses_an_artifact_of_another_task(tmp_path: Path) -> None:
    # The task's metadata entry as ONNX writes it: key, then value, each
    # preceded by its length.
    def entry(task: str) -> bytes:
        return b"\n\x04task\x12" + bytes([len(task)]) + task.encode()

    other = model.TASK[::-1]
    data = resigned_artifact(entry(model.TASK), entry(other))
    with pytest.raises(model.ModelError) as error:
        model.load(write(tmp_path / "model.onnx", data))
    assert str(error.value).endswith(
        f"it is a {other!r} model, but this service serves {model.TASK!r} models:"
        " train it with this project's app.train"
    )


def test_load_rejects_features_in_another_order() -> None:
    fields = dict.fromkeys(reversed(FEATURE_NAMES), (float, ...))
    reordered = create_model("Reordered", **fields)  # type: ignore[call-overload]
    with pytest.raises(model.ModelError, match=r"in that order") as error:
        model.load(features=reordered)
    assert f"takes ({', '.join(FEATURE_NAMES)})" in str(error.value)


def test_load_rejects_features_of_another_count() -> None:
    fields = dict.fromkeys(FEATURE_NAMES[:-1], (float, ...))
    fewer = create_model("Fewer", **fields)  # type: ignore[call-overload]
    with pytest.raises(model.ModelError, match="Fewer has fields"):
        model.load(features=fewer)


def test_load_rejects_features_of_another_type() -> None:
    fields = dict.fromkeys(FEATURE_NAMES, (str, ...))
    text = create_model("Text", **fields)  # type: ignore[call-overload]
    with pytest.raises(model.ModelError, match=f"Text.{FEATURE_NAMES[0]} is"):
        model.load(features=text)


def test_checksum_is_that_of_the_file_with_its_placeholder() -> None:
    data = model.DEFAULT_MODEL_PATH.read_bytes()
    (digest,) = artifact.CHECKSUM_ENTRY.findall(data)
    assert artifact.checksum(data, digest.decode()) == digest.decode()
    unsigned = data.replace(digest, artifact.CHECKSUM_PLACEHOLDER.encode())
    assert artifact.sign(unsigned) == data
