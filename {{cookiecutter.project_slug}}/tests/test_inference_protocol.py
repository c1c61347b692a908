import asyncio
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import DISTRIBUTION
from app.config import Settings
from app.inference_protocol import MAX_ID_LENGTH
from app.main import create_app
from app.middleware import RequestContextMiddleware
from app.model import Features
from tests.conftest import FEATURE_NAMES, FIRST, LAST, approximately
from tests.conftest import MODEL as SERVED

MODEL = SERVED.name
VERSION = SERVED.version
INFER = f"/v2/models/{MODEL}/infer"
N_FEATURES = len(FEATURE_NAMES)
OUTPUTS = list(SERVED.outputs)
VALUES = list(FIRST.features.values())
# Values just outside the bounds Features declares for its last field.
BOUNDS = Features.model_json_schema()["properties"][FEATURE_NAMES[-1]]
TOO_SMALL = BOUNDS.get("exclusiveMinimum", BOUNDS.get("minimum", 0.0)) - 1.0
TOO_LARGE = BOUNDS.get("maximum", BOUNDS.get("exclusiveMaximum", 0.0)) + 1.0


def features(*instances: dict[str, float], datatype: str = "FP32") -> dict[str, Any]:
    """The instances as the protocol's input tensor, its data flat."""
    return {
        "name": "features",
        "shape": [len(instances), N_FEATURES],
        "datatype": datatype,
        "data": [value for instance in instances for value in instance.values()],
    }


def as_tensors(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answers of /predict as the protocol's output tensors: one per field,
    BYTES for text and FP32 for numbers, a mapping per instance as a row."""
    tensors = []
    for name, first in answers[0].items():
        values = [answer[name] for answer in answers]
        shape = [len(answers)]
        if isinstance(first, dict):
            values = [value for mapping in values for value in mapping.values()]
            shape.append(len(first))
        datatype = "BYTES" if isinstance(first, str) else "FP32"
        tensors.append(
            {"name": name, "shape": shape, "datatype": datatype, "data": values}
        )
    return tensors


def predicted(client: TestClient, *instances: dict[str, float]) -> list[Any]:
    """What /predict answers for each instance."""
    return [client.post("/predict", json=instance).json() for instance in instances]


def test_server_is_live(client: TestClient) -> None:
    response = client.get("/v2/health/live")
    assert response.status_code == 200, response.text
    assert response.json() == {"live": True}


def test_server_is_ready_once_model_loaded(client: TestClient) -> None:
    response = client.get("/v2/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"ready": True}


def test_server_and_model_are_not_ready_before_model_loads(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # no `with`: lifespan not run
    response = client.get("/v2/health/ready")
    assert response.status_code == 503, response.text
    assert response.json() == {"ready": False}
    for path in (f"/v2/models/{MODEL}/ready", f"/v2/models/{MODEL}"):
        response = client.get(path)
        assert response.status_code == 503, response.text
        assert response.json() == {"error": "The model is not loaded yet."}
    response = client.post(INFER, json={"inputs": [features(FIRST.features)]})
    assert response.status_code == 503, response.text


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_server_metadata_names_the_server(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == DISTRIBUTION
    assert body["version"] == client.app.version  # type: ignore[attr-defined]
    assert body["extensions"] == []


@pytest.mark.parametrize(
    "path", [f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/versions/{VERSION}"]
)
def test_model_metadata_describes_the_tensors(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text
    outputs = [
        {"name": t["name"], "datatype": t["datatype"], "shape": [-1, *t["shape"][1:]]}
        for t in as_tensors(predicted(client, FIRST.features))
    ]
    assert response.json() == {
        "name": MODEL,
        "versions": [VERSION],
        "platform": "onnx_onnxv1",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
        "outputs": outputs,
    }


@pytest.mark.parametrize(
    "path",
    [f"/v2/models/{MODEL}/ready", f"/v2/models/{MODEL}/versions/{VERSION}/ready"],
)
def test_model_is_ready(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.json() == {"name": MODEL, "ready": True}


@pytest.mark.parametrize(
    ("method", "path", "named"),
    [
        ("GET", "/v2/models/other", "'other'"),
        ("GET", "/v2/models/other/ready", "'other'"),
        ("POST", "/v2/models/other/infer", "'other'"),
        ("GET", f"/v2/models/{MODEL}/versions/9.9", "'9.9'"),
        ("GET", f"/v2/models/{MODEL}/versions/9.9/ready", "'9.9'"),
        ("POST", f"/v2/models/{MODEL}/versions/9.9/infer", "'9.9'"),
    ],
)
def test_unknown_model_or_version_is_404(
    client: TestClient, method: str, path: str, named: str
) -> None:
    response = client.request(method, path, json={"inputs": [features(FIRST.features)]})
    assert response.status_code == 404, response.text
    assert list(response.json()) == ["error"]
    assert named in response.json()["error"]


def test_infer_gives_what_predict_gives(client: TestClient) -> None:
    response = client.post(
        INFER, json={"inputs": [features(FIRST.features, LAST.features)]}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    expected = predicted(client, FIRST.features, LAST.features)
    body = response.json()
    assert body["model_name"] == MODEL
    assert body["model_version"] == VERSION
    assert "id" not in body
    assert body["outputs"] == approximately(as_tensors(expected))


def test_infer_takes_nested_data_and_fp64(client: TestClient) -> None:
    flat = client.post(
        INFER, json={"inputs": [features(FIRST.features, LAST.features)]}
    ).json()
    tensor = features(FIRST.features, LAST.features, datatype="FP64")
    tensor["data"] = [list(FIRST.features.values()), list(LAST.features.values())]
    response = client.post(INFER, json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    assert response.json() == flat


def test_infer_returns_the_request_id_and_only_the_outputs_asked(
    client: TestClient,
) -> None:
    *_, last = as_tensors(predicted(client, LAST.features))
    response = client.post(
        f"/v2/models/{MODEL}/versions/{VERSION}/infer",
        json={
            "id": "request-7",
            "inputs": [features(LAST.features)],
            "outputs": [{"name": last["name"]}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "request-7"
    assert body["outputs"] == [approximately(last)]


def test_infer_accepts_a_body_without_content_type(client: TestClient) -> None:
    content = json.dumps({"inputs": [features(FIRST.features)]}).encode()
    response = client.post(INFER, content=content)
    assert "content-type" not in response.request.headers
    assert response.status_code == 200, response.text
    expected = as_tensors(predicted(client, FIRST.features))
    assert response.json()["outputs"] == approximately(expected)


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain"]
)
def test_infer_reads_the_body_as_json_whatever_content_type_it_declares(
    client: TestClient, content_type: str
) -> None:
    # curl's -d declares a form, as the README's example sends it.
    content = json.dumps({"inputs": [features(FIRST.features)]}).encode()
    response = client.post(
        INFER, content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text
    expected = as_tensors(predicted(client, FIRST.features))
    assert response.json()["outputs"] == approximately(expected)
    response = client.post(
        INFER, content=b"a=1", headers={"content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert "JSON" in response.json()["error"], response.text


def tensor_with(**changes: Any) -> dict[str, Any]:
    return {"inputs": [{**features(FIRST.features), **changes}]}


# (body, words the error must contain): each a malformed request.
MALFORMED = {
    "not-json": (b"{not json", "body: Invalid JSON: Expecting property name"),
    "not-utf8": (b"\xff\xfe not utf-8", "body: Invalid JSON"),
    "integer-too-long": (
        b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32",'
        b' "data": [1' + b"0" * 5000 + b", 1, 1, 1]}]}",
        "body: Invalid JSON: Exceeds the limit",
    ),
    "nested-too-deep": (b"[" * 100_000, "body: Invalid JSON: maximum recursion"),
    "not-an-object": (b"[]", "body: Input should be a valid dictionary"),
    "no-inputs": ({"inputs": []}, "body.inputs"),
    "two-inputs": (
        {"inputs": [features(FIRST.features), features(FIRST.features)]},
        "one input, 'features'",
    ),
    "unknown-input": (tensor_with(name="pixels"), "['pixels']"),
    "unknown-field": (tensor_with(colour="blue"), "body.inputs.0.colour"),
    "unknown-output": (
        {"inputs": [features(FIRST.features)], "outputs": [{"name": "logits"}]},
        "unknown outputs ['logits']",
    ),
    # A name asked for twice would repeat its tensor in the answer.
    "repeated-output": (
        {"inputs": [features(FIRST.features)], "outputs": [{"name": OUTPUTS[0]}] * 2},
        "at most once",
    ),
    "more-outputs-than-the-model-gives": (
        {
            "inputs": [features(FIRST.features)],
            "outputs": [{"name": OUTPUTS[0]}] * (len(OUTPUTS) + 1),
        },
        f"{len(OUTPUTS) + 1} outputs are asked for",
    ),
    "id-too-long": (
        {"id": "i" * (MAX_ID_LENGTH + 1), "inputs": [features(FIRST.features)]},
        f"body.id: String should have at most {MAX_ID_LENGTH} characters",
    ),
    "datatype": (tensor_with(datatype="INT64"), "datatype 'INT64'"),
    "shape-rank": (
        tensor_with(shape=[N_FEATURES]),
        f"shape [{N_FEATURES}], expected [N, {N_FEATURES}]",
    ),
    "shape-features": (
        tensor_with(shape=[1, N_FEATURES - 1], data=VALUES[:-1]),
        f"shape [1, {N_FEATURES - 1}]",
    ),
    "shape-no-rows": (tensor_with(shape=[0, N_FEATURES], data=[]), "N >= 1"),
    "shape-not-a-list": (tensor_with(shape="1x4"), "body.inputs.0.shape"),
    # The protocol's shape is a list of integers: nothing is read as one.
    "shape-of-strings": (
        tensor_with(shape=["1", str(N_FEATURES)]),
        "body.inputs.0.shape.0: Input should be a valid integer",
    ),
    "shape-of-floats": (
        tensor_with(shape=[1.0, float(N_FEATURES)]),
        "body.inputs.0.shape.0: Input should be a valid integer",
    ),
    "shape-of-booleans": (
        tensor_with(shape=[True, N_FEATURES]),
        "body.inputs.0.shape.0: Input should be a valid integer",
    ),
    "data-too-short": (
        tensor_with(data=VALUES[:-1]),
        f"has {N_FEATURES - 1} values",
    ),
    "data-too-long": (
        tensor_with(data=[*VALUES, 1.0]),
        f"has {N_FEATURES + 1} values",
    ),
    "data-nested-wrongly": (
        tensor_with(data=[VALUES[:1], VALUES[1:]]),
        f"nested data must be 1 rows of {N_FEATURES} values",
    ),
    "data-string": (
        tensor_with(data=[VALUES[0], "3.5", *VALUES[2:]]),
        "'3.5', not a number",
    ),
    "data-boolean": (
        tensor_with(data=[VALUES[0], True, *VALUES[2:]]),
        "True, not a number",
    ),
    "data-null": (
        tensor_with(data=[VALUES[0], None, *VALUES[2:]]),
        "None, not a number",
    ),
    "value-out-of-range": (
        tensor_with(data=[*VALUES[:-1], TOO_SMALL]),
        f"instance 0: {FEATURE_NAMES[-1]}: Input should be greater than",
    ),
    "value-too-large": (
        tensor_with(data=[*VALUES[:-1], TOO_LARGE]),
        f"instance 0: {FEATURE_NAMES[-1]}: Input should be less than",
    ),
}
# JSON that json.dumps would refuse to write: put in as raw text.
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999"]


@pytest.mark.parametrize(("body", "reported"), MALFORMED.values(), ids=MALFORMED)
def test_infer_answers_a_malformed_request_400_naming_the_problem(
    client: TestClient, body: dict[str, Any] | bytes, reported: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(INFER, content=content)
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"]
    assert reported in response.json()["error"]


@pytest.mark.parametrize("raw_value", NON_FINITE)
def test_infer_refuses_non_finite_values(client: TestClient, raw_value: str) -> None:
    body = json.dumps(tensor_with(data=[*VALUES[:-1], "__value__"]))
    content = body.replace('"__value__"', raw_value)
    response = client.post(INFER, content=content.encode())
    assert response.status_code == 400, response.text
    assert f"value {N_FEATURES - 1} is" in response.json()["error"]
    assert "values must be finite" in response.json()["error"]


def test_infer_refuses_binary_tensor_data(client: TestClient) -> None:
    response = client.post(
        INFER,
        content=b'{"inputs": []}\x00\x01',
        headers={"Inference-Header-Content-Length": "14"},
    )
    assert response.status_code == 400, response.text
    assert "binary tensor data is not supported" in response.json()["error"]


def test_infer_over_batch_limit_is_400_naming_the_limit() -> None:
    settings = Settings(_env_file=None, max_rows_per_request=2)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            INFER, json={"inputs": [features(*[FIRST.features] * 3)]}
        )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "at most 2 instances are allowed per request, got 3"
    }


def test_infer_over_batch_limit_is_refused_before_its_values_are_read() -> None:
    settings = Settings(_env_file=None, max_rows_per_request=2)
    tensor = {**features(*[FIRST.features] * 3), "data": ["x"] * 3 * N_FEATURES}
    with TestClient(create_app(settings)) as client:
        response = client.post(INFER, json={"inputs": [tensor]})
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "at most 2 instances are allowed per request, got 3"
    }


def test_infer_refuses_more_outputs_than_the_model_gives_before_reading_them(
    client: TestClient,
) -> None:
    outputs = [{"name": 0}] * (len(OUTPUTS) + 1)  # not even names
    response = client.post(
        INFER, json={"inputs": [features(FIRST.features)], "outputs": outputs}
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": f"body.outputs: {len(OUTPUTS) + 1} outputs are asked for, but the"
        f" model gives"
        f" {len(OUTPUTS)}: ask for each of {OUTPUTS} at most once"
    }


def test_infer_returns_an_id_as_long_as_the_limit(client: TestClient) -> None:
    request_id = "i" * MAX_ID_LENGTH
    response = client.post(
        INFER, json={"id": request_id, "inputs": [features(FIRST.features)]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == request_id


def test_infer_error_shortens_each_part_of_its_location(client: TestClient) -> None:
    # The name of an unknown field comes from the client: shortened, it leaves
    # room for what is wrong.
    response = client.post(INFER, json=tensor_with(**{"k" * 5000: 1}))
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": f"body.inputs.0.{'k' * 100}...: Extra inputs are not permitted"
    }


def chunks(body: dict[str, Any]) -> Any:
    """The body as JSON, sent in chunks without a Content-Length."""
    yield json.dumps(body).encode()


@pytest.mark.parametrize("sent", [json.dumps, chunks], ids=["length", "no-length"])
def test_infer_body_over_limit_is_413_in_the_protocols_shape(sent: Any) -> None:
    settings = Settings(_env_file=None, max_body_bytes=64)
    body = {"inputs": [features(FIRST.features, LAST.features)]}
    with TestClient(create_app(settings)) as client:
        response = client.post(INFER, content=sent(body))
    assert response.status_code == 413, response.text
    assert response.json() == {"error": "Content Too Large"}


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", INFER, 405, "Method Not Allowed"),
        ("POST", "/v2/health/live", 405, "Method Not Allowed"),
        ("GET", "/v2/nothing", 404, "Not Found"),
        ("GET", f"/v2/models/{MODEL}/labels", 404, "Not Found"),
    ],
)
def test_paths_and_methods_the_protocol_lacks_are_answered_in_its_shape(
    client: TestClient, method: str, path: str, status: int, error: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == status, response.text
    assert response.json() == {"error": error}


def test_infer_failing_model_is_500_in_the_protocols_shape(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any) -> Any:
        raise RuntimeError("the model failed")

    monkeypatch.setattr(SERVED, "predict_batch", fail)
    # Through the batcher, which says the model failed; and without it, where
    # the exception reaches the app's last handler.
    unbatched = Settings(_env_file=None, max_rows_per_run=1)
    for served, message in ((settings, "Prediction failed"), (unbatched, "Internal")):
        app = create_app(served, SERVED)
        with TestClient(app, raise_server_exceptions=False) as client:
            body = {"inputs": [features(FIRST.features)]}
            response = client.post(INFER, json=body)
            assert response.status_code == 500, response.text
            assert list(response.json()) == ["error"]
            assert response.json()["error"].startswith(message)
            body = {"instances": [FIRST.features]}
            response = client.post("/predict/batch", json=body)
            assert response.status_code == 500, response.text
            assert response.text == "Internal Server Error"


def test_infer_stalled_at_shutdown_is_503_in_the_protocols_shape() -> None:
    async def stalled(*args: Any) -> None:
        raise asyncio.CancelledError  # as uvicorn cancels it at the deadline

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": INFER, "headers": []}
    asyncio.run(RequestContextMiddleware(stalled)(scope, receive, send))
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"]) == {"error": "The service is shutting down"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "answer"),
    [
        ("POST", "/predict", {}, 422, None),
        ("GET", "/predict", None, 405, {"detail": "Method Not Allowed"}),
        ("GET", "/nothing", None, 404, {"detail": "Not Found"}),
        ("GET", "/v2nothing", None, 404, {"detail": "Not Found"}),
    ],
)
def test_other_routes_keep_their_own_errors(
    client: TestClient,
    method: str,
    path: str,
    body: Any,
    status: int,
    answer: dict[str, Any] | None,
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert "detail" in response.json()
    if answer is not None:
        assert response.json() == answer


def test_openapi_describes_the_protocol(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    } <= set(schema["paths"])
    infer = schema["paths"]["/v2/models/{name}/infer"]["post"]
    assert {"200", "400", "404"} <= set(infer["responses"])
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }
    assert infer["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceResponse"
    }
    # Every schema the document refers to is in it.
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert {"InferenceRequest", "RequestInput", "InferenceResponse"} <= refs
    assert refs <= set(schema["components"]["schemas"])
    request = schema["components"]["schemas"]["InferenceRequest"]
    assert request["properties"]["inputs"]["items"] == {
        "$ref": "#/components/schemas/RequestInput"
    }


def test_infer_is_matched_right_after_the_service_routes(client: TestClient) -> None:
    # Each request is matched against the routes in turn: infer, the route
    # called under load, comes before the docs and the protocol's other routes.
    paths = [getattr(route, "path", "") for route in client.app.routes]  # type: ignore[attr-defined]
    first_v2 = next(i for i, path in enumerate(paths) if path.startswith("/v2"))
    assert paths[first_v2 : first_v2 + 2] == [
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ]
    assert first_v2 < paths.index("/openapi.json")
