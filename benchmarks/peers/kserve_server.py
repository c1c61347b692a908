"""A KServe ModelServer serving an ONNX classifier, on v1 and on v2.

Run by ``benchmarks.peers`` in the KServe virtualenv, with this directory on
PYTHONPATH::

    python kserve_server.py --model_path model.onnx --http_port 8080

Every other option is KServe's own (``--workers``, ``--enable_grpc``, ...), at
its defaults unless given. v1 (``/v1/models/{name}:predict``) takes
``{"instances": [[4 values], ...]}`` and answers one ``{"label", "probabilities"}``
object per row, like the service's ``/predict``; v2 takes one ``features``
tensor ``[N, 4]`` and gives ``label`` and ``probabilities``, like its ``/v2``.
"""

import argparse
from typing import Any

from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.model_server import parser as kserve_parser
from kserve.utils.utils import generate_uuid
from onnx_classifier import PROBABILITIES, Classifier


class OnnxModel(Model):
    def __init__(self, path: str) -> None:
        self._classifier = Classifier(path)
        super().__init__(self._classifier.name)
        self.ready = True

    def predict(
        self, payload: dict[str, Any] | InferRequest, headers: Any = None
    ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, InferRequest):
            rows = payload.inputs[0].as_numpy()
            labels, probabilities = self._classifier.run(rows)
            label = InferOutput("label", [len(labels)], "BYTES", labels)
            scores = InferOutput(PROBABILITIES, list(probabilities.shape), "FP32")
            scores.set_data_from_numpy(probabilities, binary_data=False)
            # The protocol makes the id optional; KServe's response needs one.
            response_id = payload.id or generate_uuid()
            return InferResponse(
                response_id, self.name, [label, scores], model_version="1"
            )
        labels, probabilities = self._classifier.run(payload["instances"])
        classes = self._classifier.classes
        return {
            "predictions": [
                {"label": label, "probabilities": dict(zip(classes, row, strict=True))}
                for label, row in zip(labels, probabilities.tolist(), strict=True)
            ]
        }


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve_parser])
    parser.add_argument("--model_path", required=True)
    arguments, _ = parser.parse_known_args()
    ModelServer().start([OnnxModel(arguments.model_path)])


if __name__ == "__main__":
    main()
