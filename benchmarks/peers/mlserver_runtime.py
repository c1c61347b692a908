"""An MLServer 1.7 runtime serving an ONNX classifier over the Open Inference Protocol.

``benchmarks.peers`` writes a model-settings.json whose ``implementation`` is
``mlserver_runtime.OnnxRuntime`` and whose ``parameters.uri`` is the ONNX file,
and runs ``mlserver start`` with this directory on PYTHONPATH. Like the
service's ``/v2`` route, it takes one ``features`` tensor ``[N, 4]`` and gives
``label`` (BYTES) and ``probabilities`` (FP32) with a first axis of N; with
adaptive batching on, MLServer merges requests into one such call.
"""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri
from onnx_classifier import PROBABILITIES, Classifier


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        self._classifier = Classifier(await get_model_uri(self._settings))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = NumpyCodec.decode_input(payload.inputs[0])
        labels, probabilities = self._classifier.run(rows)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                StringCodec.encode_output("label", labels),
                NumpyCodec.encode_output(PROBABILITIES, probabilities),
            ],
        )
