"""Give benchmarks/heavy/build.py's MLP the metadata the rendered service verifies.

Run by the render's Python, from the render (it imports ``app``)::

    .venv/bin/python heavy_artifact.py mlp.onnx heavy.onnx

The result is an artifact the service's own ``load`` accepts, as
``app.train.save`` writes one: name, version, task, the Iris feature names and
classes, no training scores or examples, and the checksum. So the service,
MLServer and KServe all serve this one file, and the service serves it through
its own model code, ``/predict`` and ``/v2`` alike.
"""

import json
import sys
from pathlib import Path

import onnx
from app import artifact
from app.model import DEFAULT_MODEL_PATH, TASK, Features

NAME = "heavy-mlp"


def write(source: Path, target: Path) -> None:
    sample = {p.key: p.value for p in onnx.load(DEFAULT_MODEL_PATH).metadata_props}
    model = onnx.load(source)
    metadata = {
        "name": NAME,
        "version": "1",
        "task": TASK,
        "feature_names": json.dumps(list(Features.model_fields)),
        "classes": sample["classes"],
        "training": json.dumps({"note": "random weights: a benchmark of cost"}),
        "examples": "[]",
        "sha256": artifact.CHECKSUM_PLACEHOLDER,
    }
    onnx.helper.set_model_props(model, metadata)
    target.write_bytes(artifact.sign(model.SerializeToString()))


if __name__ == "__main__":
    write(Path(sys.argv[1]), Path(sys.argv[2]))
