"""Write the heavy benchmark model: an ONNX multi-layer perceptron on the Iris features.

Run by a rendered (classification) project's Python, which has onnx and numpy,
naming the project, whose ``app.artifact`` signs the file with the metadata and
checksum its service verifies, so that ``APP_MODEL_PATH`` serves it as it is::

    .venv/bin/python benchmarks/heavy/build.py /tmp/mlp.onnx PROJECT

Four hidden layers of 1536 units cost about 1 ms per single-row call on one
core of the machine the figures in benchmarks/README.md come from, and about
0.15 ms per row in a run of 64 rows: a model whose cost dwarfs the HTTP
layer's, unlike the sample model's few microseconds. The weights are random
(seeded): the benchmark measures cost, not accuracy.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = 4
CLASSES = 3
HIDDEN = 1536
LAYERS = 4


def build(
    path: Path, project: Path, hidden: int = HIDDEN, layers: int = LAYERS
) -> None:
    generator = np.random.default_rng(14)
    nodes, weights = [], []
    previous, width = "features", FEATURES
    for layer in range(layers + 1):
        out = CLASSES if layer == layers else hidden
        matrix = generator.standard_normal((width, out)) / np.sqrt(width)
        weights.append(numpy_helper.from_array(matrix.astype(np.float32), f"w{layer}"))
        nodes.append(helper.make_node("MatMul", [previous, f"w{layer}"], [f"m{layer}"]))
        if layer < layers:
            nodes.append(helper.make_node("Relu", [f"m{layer}"], [f"h{layer}"]))
            previous, width = f"h{layer}", out
    nodes.append(helper.make_node("Softmax", [f"m{layers}"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "heavy-mlp",
        [
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, [None, FEATURES]
            )
        ],
        [
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, [None, CLASSES]
            )
        ],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # readable by onnxruntime 1.20 and later
    onnx.checker.check_model(model)
    sys.path.insert(0, str(project))
    from app import artifact  # the project's own
    from app import model as served

    metadata = {
        "name": "heavy-mlp",
        "version": "1",
        "task": "classification",
        "feature_names": json.dumps(list(served.Features.model_fields)),
        "classes": json.dumps(["setosa", "versicolor", "virginica"]),
        "training": json.dumps({"weights": "random, seeded: a cost, not a model"}),
        "examples": "[]",
        "sha256": artifact.CHECKSUM_PLACEHOLDER,
    }
    onnx.helper.set_model_props(model, metadata)
    path.write_bytes(artifact.sign(model.SerializeToString()))


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
