"""The rendered service speaks the Open Inference Protocol (KServe v2).

Proven with clients and documents no one here wrote: NVIDIA's ``tritonclient``
drives a running render, and its answers are checked against the protocol's
published OpenAPI document (tests/data/README.md says where it comes from).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from tritonclient import http as triton
from tritonclient.utils import InferenceServerException

from tests.harness import DATA
from toolkit.render import bake, pip_install
from toolkit.serve import SETOSA, VIRGINICA, http, serving_app

OPENAPI = DATA / "open-inference-protocol/open_inference_rest.yaml"
SAMPLES = (SETOSA, VIRGINICA)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A default render, installed with pip and running."""
    tmp = tmp_path_factory.mktemp("inference-protocol")
    project = bake(tmp / "render")
    python = pip_install(project, tmp / "venv", project.path)
    with serving_app(python, tmp, tmp / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def model(url: str) -> dict[str, Any]:
    """What /model says is served."""
    status, body = http("GET", f"{url}/model")
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def predictions(url: str) -> list[dict[str, Any]]:
    """What /predict answers for the samples."""
    answers = [http("POST", f"{url}/predict", sample) for sample in SAMPLES]
    assert [status for status, _ in answers] == [200] * len(SAMPLES), answers
    return [body for _, body in answers]


@pytest.fixture
def client(url: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    yield client
    client.close()


def features(datatype: str, binary_data: bool = False) -> triton.InferInput:
    values = np.array([list(sample.values()) for sample in SAMPLES])
    tensor = triton.InferInput("features", list(values.shape), datatype)
    dtype = np.float32 if datatype == "FP32" else np.float64
    tensor.set_data_from_numpy(values.astype(dtype), binary_data=binary_data)
    return tensor


def requested(*names: str) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=False) for name in names]


# --- tritonclient -------------------------------------------------------------


def test_tritonclient_sees_server_and_model_live_and_ready(
    client: triton.InferenceServerClient, model: dict[str, Any]
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(model["name"])
    assert client.is_model_ready(model["name"], model["version"])
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready(model["name"], "no-such-version")


def test_tritonclient_reads_server_and_model_metadata(
    client: triton.InferenceServerClient, model: dict[str, Any]
) -> None:
    server = client.get_server_metadata()
    assert server["name"] == "iris-classifier"
    assert server["version"] == "0.1.0"
    metadata = client.get_model_metadata(model["name"], model["version"])
    assert metadata == client.get_model_metadata(model["name"])
    assert metadata["name"] == model["name"]
    assert metadata["versions"] == [model["version"]]
    n_features, n_classes = len(model["feature_names"]), len(model["classes"])
    assert metadata["inputs"] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, n_features]}
    ]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, n_classes]},
    ]


def test_tritonclient_infers_what_predict_answers(
    client: triton.InferenceServerClient,
    model: dict[str, Any],
    predictions: list[dict[str, Any]],
) -> None:
    result = client.infer(
        model["name"],
        [features("FP64")],
        outputs=requested("label", "probabilities"),
        request_id="iris-7",
    )
    assert result.get_response()["id"] == "iris-7"
    assert result.as_numpy("label").tolist() == [p["label"] for p in predictions]
    expected = np.array(
        [[p["probabilities"][c] for c in model["classes"]] for p in predictions],
        dtype=np.float32,
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32
    # One run of the model for the batch may round the last digits differently
    # from a run per instance.
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)


def test_tritonclient_infers_from_fp32_within_its_precision(
    client: triton.InferenceServerClient,
    model: dict[str, Any],
    predictions: list[dict[str, Any]],
) -> None:
    # Rounding the measurements to 32 bits moves the probabilities a little.
    result = client.infer(
        model["name"],
        [features("FP32")],
        model_version=model["version"],
        outputs=requested("probabilities", "label"),
    )
    assert result.as_numpy("label").tolist() == [p["label"] for p in predictions]
    expected = [[p["probabilities"][c] for c in model["classes"]] for p in predictions]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-5)


def test_tritonclient_gets_only_the_outputs_asked(
    client: triton.InferenceServerClient, model: dict[str, Any]
) -> None:
    result = client.infer(model["name"], [features("FP64")], outputs=requested("label"))
    assert result.as_numpy("label").tolist() == ["setosa", "virginica"]
    assert result.as_numpy("probabilities") is None


def test_tritonclient_reports_the_server_error(
    client: triton.InferenceServerClient, model: dict[str, Any]
) -> None:
    pixels = triton.InferInput("pixels", [1, 4], "FP64")
    pixels.set_data_from_numpy(np.ones((1, 4)), binary_data=False)
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model["name"], [pixels], outputs=requested("label"))
    assert raised.value.status() == "400"
    assert "the model takes one input, 'features'" in raised.value.message()


def test_tritonclient_is_told_to_send_json_rather_than_binary_data(
    client: triton.InferenceServerClient, model: dict[str, Any]
) -> None:
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model["name"], [features("FP64", binary_data=True)])
    assert raised.value.status() == "400"
    assert "binary_data=False" in raised.value.message()


# --- the published OpenAPI document -------------------------------------------


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text())


def openapi_errors(
    openapi: dict[str, Any], schema_name: str, instance: Any
) -> list[str]:
    """Where the instance breaks one of the document's schemas."""
    # OpenAPI 3.0 schemas are JSON Schema draft 4 with a few extra keywords;
    # references are resolved against the whole document.
    schema = {**openapi, "$ref": f"#/components/schemas/{schema_name}"}
    validator = jsonschema.Draft4Validator(schema)
    return [
        f"{list(error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def infer_body(model: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "1",
        "inputs": [
            {
                "name": "features",
                "shape": [len(SAMPLES), len(model["feature_names"])],
                "datatype": "FP32",
                "data": [list(sample.values()) for sample in SAMPLES],
            }
        ],
        "outputs": [{"name": "label"}, {"name": "probabilities"}],
    }


def test_every_path_of_the_document_answers_as_it_says(
    url: str, model: dict[str, Any], openapi: dict[str, Any]
) -> None:
    answered = []
    for template, operations in openapi["paths"].items():
        path = template.replace("${MODEL_NAME}", model["name"]).replace(
            "${MODEL_VERSION}", model["version"]
        )
        for method, operation in operations.items():
            if method == "parameters":
                continue
            request = operation.get("requestBody", {}).get("content", {})
            body = None
            if request:
                body = infer_body(model)
                schema = request["application/json"]["schema"]["$ref"]
                assert openapi_errors(openapi, schema.rsplit("/")[-1], body) == []
            status, answer = http(method.upper(), f"{url}{path}", body)
            assert status == 200, (template, answer)
            content = operation["responses"]["200"].get("content")
            if content:
                schema = content["application/json"]["schema"]["$ref"]
                errors = openapi_errors(openapi, schema.rsplit("/")[-1], answer)
                assert errors == [], (template, answer)
            answered.append(template)
    assert len(answered) == 6, answered


def with_tensor(**changes: Any) -> Any:
    """The valid request, its tensor changed, for the model."""

    def body(model: dict[str, Any]) -> dict[str, Any]:
        valid = infer_body(model)
        n_features = len(model["feature_names"])
        valid["inputs"][0].update(
            {key: value(n_features) for key, value in changes.items()}
        )
        return valid

    return body


def with_request(**changes: Any) -> Any:
    """The valid request, changed, for the model."""
    return lambda model: {**infer_body(model), **changes}


INFER = "/v2/models/{name}/infer"
# Each a request refused (a GET if it has no body), and the document's schema
# for the answer: the infer operation's for a path the document lacks.
REFUSED: dict[str, tuple[str, Any, int, str]] = {
    "unknown-model": ("/v2/models/no-such-model", None, 404, "model"),
    "unknown-version": ("/v2/models/{name}/versions/0", None, 404, "model"),
    "malformed-infer": (INFER, {"inputs": []}, 400, "infer"),
    "infer-unknown-model": ("/v2/models/no-such-model/infer", infer_body, 404, "infer"),
    "unknown-path": ("/v2/models/{name}/labels", None, 404, "infer"),
    "method-not-allowed": (INFER, None, 405, "infer"),
    "shape-of-strings": (
        INFER,
        with_tensor(shape=lambda n: ["2", str(n)]),
        400,
        "infer",
    ),
    "shape-of-floats": (
        INFER,
        with_tensor(shape=lambda n: [2.0, float(n)]),
        400,
        "infer",
    ),
    # true would be read as 1: one row.
    "shape-of-booleans": (
        INFER,
        with_tensor(shape=lambda n: [True, n], data=lambda n: [list(SETOSA.values())]),
        400,
        "infer",
    ),
    "outputs-repeated": (
        INFER,
        with_request(outputs=[{"name": "label"}] * 3),
        400,
        "infer",
    ),
    "id-too-long": (INFER, with_request(id="i" * 1025), 400, "infer"),
}
ERROR_SCHEMAS = {
    "model": "metadata_model_error_response",
    "infer": "inference_error_response",
}


@pytest.mark.parametrize(
    ("path", "body", "status", "schema"), REFUSED.values(), ids=REFUSED
)
def test_errors_take_the_documented_shape(
    url: str,
    model: dict[str, Any],
    openapi: dict[str, Any],
    path: str,
    body: Any,
    status: int,
    schema: str,
) -> None:
    path = path.replace("{name}", model["name"])
    payload = body(model) if callable(body) else body
    answer_status, answer = http("GET" if body is None else "POST", url + path, payload)
    assert answer_status == status, answer
    assert openapi_errors(openapi, ERROR_SCHEMAS[schema], answer) == []
    assert list(answer) == ["error"]


def test_body_over_the_limit_takes_the_documented_shape(
    url: str, model: dict[str, Any], openapi: dict[str, Any]
) -> None:
    # Only the head, announcing a body over APP_MAX_BODY_BYTES (1 MiB): the
    # service answers at once, and a client still sending would see its
    # connection closed under it.
    connection = HTTPConnection(url.removeprefix("http://"), timeout=5)
    connection.putrequest("POST", INFER.replace("{name}", model["name"]))
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(1024 * 1024 + 1))
    connection.endheaders()
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 413, answer
    assert openapi_errors(openapi, "inference_error_response", answer) == []
    assert answer == {"error": "Content Too Large"}
