"""A LitServe server running an ONNX classifier behind ``/predict``.

Run by ``benchmarks.peers`` in the LitServe virtualenv::

    python litserve_server.py MODEL.onnx PORT

The body and the answer are the service's ``/predict``'s: one object of named
features in, ``{"label", "probabilities"}`` out. LitServe's defaults otherwise:
no batching, one inference worker process beside the API server process (its
design: they talk through queues), so this peer is not one process.
"""

import sys
from typing import Any

import litserve
from onnx_classifier import Classifier

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


class OnnxAPI(litserve.LitAPI):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def setup(self, device: str) -> None:
        self._classifier = Classifier(self._path)

    def decode_request(self, request: dict[str, Any]) -> list[float]:
        return [float(request[name]) for name in FEATURES]

    def predict(self, row: list[float]) -> dict[str, Any]:
        labels, probabilities = self._classifier.run([row])
        classes = self._classifier.classes
        values = probabilities[0].tolist()
        return {
            "label": labels[0],
            "probabilities": dict(zip(classes, values, strict=True)),
        }

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


if __name__ == "__main__":
    server = litserve.LitServer(OnnxAPI(sys.argv[1]), accelerator="cpu")
    server.run(port=int(sys.argv[2]), generate_client_file=False)
