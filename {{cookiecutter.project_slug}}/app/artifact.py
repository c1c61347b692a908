"""The model artifact: an ONNX file with its metadata and a SHA-256 checksum.

``app.train.save`` writes it; ``read`` refuses anything else in one line (a
``ModelError``) before ONNX Runtime runs it: a file that is not regular, too
large, damaged, or without the metadata the service reads. What the metadata
must say about the model's outputs is the model's business (``app.model``).
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime
from pydantic import BaseModel

# The checksum is a SHA-256 of the whole file, taken while its own value was
# this placeholder (same length, so the file's layout does not change).
CHECKSUM_PLACEHOLDER = "0" * 64
# The checksum's metadata entry as ONNX's protobuf encoding writes it: the key
# "sha256" (6 bytes), then its value (64 bytes, "@"), so it can be found, and
# checked, before the file is parsed.
CHECKSUM_ENTRY = re.compile(rb"\n\x06sha256\x12@([0-9a-f]{64})")
# The metadata every artifact carries: plain text, then JSON.
TEXT_METADATA_KEYS = ("name", "version", "task", "sha256")
JSON_METADATA_KEYS = ("feature_names", "training", "examples")
INPUT_DTYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


class ModelError(Exception):
    """The model artifact is missing, unreadable, corrupt or does not fit."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"cannot load model from '{path}': {problem}")
        self.path = path
        self.problem = problem


class Artifact(NamedTuple):
    """An artifact that passed its checks, in an ONNX Runtime session."""

    session: onnxruntime.InferenceSession
    metadata: dict[str, Any]  # the text keys as text, the JSON keys parsed
    input_name: str
    input_dtype: type[np.floating[Any]]


def read(
    path: Path,
    *,
    task: str,
    text_keys: Sequence[str] = (),
    json_keys: Sequence[str] = (),
    threads: int = 1,
    max_bytes: int = 1024**3,
) -> Artifact:
    """Verify the artifact at ``path`` and open it in ONNX Runtime.

    ``task`` is what the artifact must be trained for (its ``task`` metadata);
    ``text_keys`` and ``json_keys`` are the metadata of that task, beside the
    common ones; ``threads`` is ONNX Runtime's intra-op thread count; a file
    over ``max_bytes`` is refused before it is read.
    """
    data = _read_bytes(path, max_bytes)
    # Checked before ONNX Runtime parses anything, so that a damaged file is
    # refused in one line rather than half-loaded.
    _verify_checksum(path, data)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # its errors come back as the exception
    try:
        session = onnxruntime.InferenceSession(
            data, options, providers=["CPUExecutionProvider"], enable_fallback=False
        )
    except Exception as error:  # ONNX Runtime raises its own, undocumented types
        problem = " ".join(str(error).split())
        raise ModelError(path, f"ONNX Runtime cannot run it ({problem})") from error
    raw = session.get_modelmeta().custom_metadata_map
    metadata = _read_metadata(path, raw, TEXT_METADATA_KEYS, JSON_METADATA_KEYS)
    # The task first: an artifact of another task lacks this task's metadata.
    if metadata["task"] != task:
        raise ModelError(
            path,
            f"it is a {metadata['task']!r} model, but this service serves {task!r}"
            " models: train it with this project's app.train",
        )
    metadata |= _read_metadata(path, raw, text_keys, json_keys)
    model_input = _check_input(path, session, metadata["feature_names"])
    return Artifact(session, metadata, model_input.name, INPUT_DTYPES[model_input.type])


def checksum(data: bytes, digest: str = CHECKSUM_PLACEHOLDER) -> str:
    """SHA-256 of an artifact whose checksum metadata holds ``digest``."""
    unsigned = data.replace(digest.encode(), CHECKSUM_PLACEHOLDER.encode())
    return hashlib.sha256(unsigned).hexdigest()


def sign(data: bytes) -> bytes:
    """A serialized artifact, its checksum placeholder replaced by its checksum."""
    return data.replace(CHECKSUM_PLACEHOLDER.encode(), checksum(data).encode())


def output_width(
    path: Path, session: onnxruntime.InferenceSession, name: str, hint: str
) -> int | str | None:
    """The size of the last axis of the output ``name`` (a name if symbolic,
    None for a tensor of one axis); ``hint`` says how to export it."""
    outputs = {output.name: output for output in session.get_outputs()}
    if name not in outputs:
        raise ModelError(
            path, f"no {name!r} output (found {', '.join(outputs)}); {hint}"
        )
    shape = outputs[name].shape
    width: int | str | None = shape[-1] if len(shape) > 1 else None
    return width


def check_features(
    path: Path, features: type[BaseModel], feature_names: Sequence[str]
) -> None:
    """Refuse a request body whose fields are not the model's inputs, in order."""
    fields = tuple(features.model_fields)
    if fields != tuple(feature_names):
        raise ModelError(
            path,
            f"{features.__name__} has fields ({', '.join(fields)}) but the model"
            f" takes ({', '.join(feature_names)}), in that order",
        )
    for name, field in features.model_fields.items():
        if field.annotation not in (float, int):
            raise ModelError(
                path,
                f"{features.__name__}.{name} is {field.annotation!r} but the model"
                " takes numbers: declare it float",
            )


def is_list_of_text(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        info = path.stat()
        # Only a regular file: a device such as /dev/zero never ends, and
        # opening a FIFO blocks start-up until something writes to it.
        if not stat.S_ISREG(info.st_mode):
            raise ModelError(path, "not a regular file")
        if info.st_size > max_bytes:
            raise ModelError(
                path,
                f"it is {info.st_size} bytes, over the limit of {max_bytes}"
                " (APP_MODEL_MAX_BYTES)",
            )
        with path.open("rb") as file:
            return file.read(max_bytes + 1)  # the file may have grown since
    except OSError as error:
        raise ModelError(path, error.strerror or str(error)) from error


def _verify_checksum(path: Path, data: bytes) -> None:
    found = CHECKSUM_ENTRY.findall(data)
    if len(found) != 1:
        raise ModelError(
            path,
            "no sha256 in its metadata: not an artifact written by app.train.save",
        )
    digest = found[0].decode()
    if data.count(found[0]) != 1 or checksum(data, digest) != digest:
        raise ModelError(path, "checksum mismatch: the file was changed or damaged")


def _read_metadata(
    path: Path,
    raw: Mapping[str, str],
    text_keys: Sequence[str],
    json_keys: Sequence[str],
) -> dict[str, Any]:
    missing = [key for key in (*text_keys, *json_keys) if key not in raw]
    if missing:
        raise ModelError(
            path,
            f"missing metadata: {', '.join(missing)} (write it with app.train.save)",
        )
    try:
        parsed = {key: json.loads(raw[key]) for key in json_keys}
    except ValueError as error:
        raise ModelError(path, f"metadata is not valid JSON ({error})") from error
    metadata = {key: raw[key] for key in text_keys} | parsed
    if "feature_names" in metadata and not is_list_of_text(metadata["feature_names"]):
        raise ModelError(path, "feature_names must be a list of text")
    if "training" in metadata and not isinstance(metadata["training"], dict):
        raise ModelError(path, "training must be a JSON object")
    if "examples" in metadata and not isinstance(metadata["examples"], list):
        raise ModelError(path, "examples must be a JSON list")
    return metadata


def _check_input(
    path: Path, session: onnxruntime.InferenceSession, feature_names: Sequence[str]
) -> Any:
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type not in INPUT_DTYPES:
        found = ", ".join(f"{i.name}: {i.type}" for i in inputs)
        raise ModelError(
            path, f"expected one tensor(float) or tensor(double) input, found {found}"
        )
    width = inputs[0].shape[-1]
    if isinstance(width, int) and width != len(feature_names):
        raise ModelError(
            path,
            f"the input takes {width} features but feature_names lists"
            f" {len(feature_names)}",
        )
    return inputs[0]
