"""What every peer runs: an ONNX classifier in ONNX Runtime, one thread.

Imported by the MLServer runtime and the KServe server, each in its own
virtualenv. It reads the same artifact as the rendered service (the Iris sample
or the heavy MLP, both with the service's metadata), so every server runs the
same file with the same runtime settings: one intra-op and one inter-op thread.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

PROBABILITIES = "probabilities"
DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class Classifier:
    """Rows of features in, labels and class probabilities out."""

    def __init__(self, path: Path | str) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        (model_input,) = self._session.get_inputs()
        self._input = model_input.name
        self._dtype = DTYPES[model_input.type]
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.name: str = metadata["name"]
        self.version: str = metadata["version"]
        self.classes: list[str] = json.loads(metadata["classes"])

    def run(self, rows: Any) -> tuple[list[str], np.ndarray[Any, Any]]:
        """The label and the probabilities of each row of ``rows``."""
        inputs = np.asarray(rows, dtype=self._dtype).reshape(-1, 4)
        (probabilities,) = self._session.run([PROBABILITIES], {self._input: inputs})
        labels = [self.classes[i] for i in probabilities.argmax(axis=1).tolist()]
        return labels, probabilities
