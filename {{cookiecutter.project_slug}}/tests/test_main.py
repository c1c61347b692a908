import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import FEATURE_NAMES, FIRST, LAST, MODEL, predicted

# More unknown fields than are reported one by one.
UNKNOWN = {f"unknown_{i}": 0 for i in range(20)}


def test_live_is_ok(client: TestClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "alive"}


def test_ready_is_503_before_model_loads(settings: Settings) -> None:
    client = TestClient(create_app(settings))  # no `with`: lifespan not run
    response = client.get("/health/ready")
    assert response.status_code == 503, response.text
    assert response.json() == {"status": "loading"}
    assert client.post("/predict", json=FIRST.features).status_code == 503


def test_ready_is_200_once_model_loaded(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


def test_model_describes_what_is_served(client: TestClient) -> None:
    response = client.get("/model")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == MODEL.info().model_dump(mode="json")
    assert (body["name"], body["version"]) == (MODEL.name, MODEL.version)
    assert body["feature_names"] == list(FEATURE_NAMES)
    assert body["training"] == MODEL.training


def test_predict_first_example(client: TestClient) -> None:
    response = client.post("/predict", json=FIRST.features)
    assert response.status_code == 200, response.text
    assert response.json() == predicted(FIRST.features)


def test_predict_batch_keeps_order(client: TestClient) -> None:
    response = client.post(
        "/predict/batch", json={"instances": [FIRST.features, LAST.features]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "predictions": [predicted(FIRST.features), predicted(LAST.features)]
    }


def test_predict_batch_over_limit_names_limit() -> None:
    settings = Settings(_env_file=None, max_rows_per_request=2)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/predict/batch", json={"instances": [FIRST.features] * 3}
        )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"] == (
        "at most 2 instances are allowed per batch, got 3"
    )


def test_predict_batch_over_limit_is_one_error_before_instances_are_checked() -> None:
    settings = Settings(_env_file=None, max_rows_per_request=2)
    with TestClient(create_app(settings)) as client:
        response = client.post("/predict/batch", json={"instances": [0] * 5})
    assert response.status_code == 422, response.text
    assert response.json() == {
        "detail": [
            {
                "loc": ["body", "instances"],
                "msg": "at most 2 instances are allowed per batch, got 5",
                "type": "too_long",
            }
        ]
    }


def test_predict_batch_reports_only_first_invalid_instance(client: TestClient) -> None:
    instances = [FIRST.features, {**FIRST.features, FEATURE_NAMES[0]: "x"}, {}, {}]
    response = client.post("/predict/batch", json={"instances": instances})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {
            "loc": ["body", "instances", 1, FEATURE_NAMES[0]],
            "msg": "Input should be a valid number",
            "type": "float_type",
        }
    ]


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/predict", {**FIRST.features, **UNKNOWN}, ["body"]),
        (
            "/predict/batch",
            {"instances": [{**FIRST.features, **UNKNOWN}]},
            ["body", "instances", 0],
        ),
        ("/predict/batch", {"instances": [FIRST.features], **UNKNOWN}, ["body"]),
    ],
    ids=["predict", "batch-instance", "batch"],
)
def test_many_unknown_fields_are_one_error(
    client: TestClient, path: str, body: dict[str, Any], loc: list[Any]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == loc
    assert error["type"] == "too_many_fields"


def test_422_shows_first_errors_and_counts_the_rest(client: TestClient) -> None:
    # One error per feature, and one per unknown field: ten of them are shown.
    body = {**dict.fromkeys(FIRST.features, "x"), **{f"u{i}": 0 for i in range(10)}}
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert len(detail) == 11
    assert detail[-1] == {
        "loc": ["body"],
        "msg": f"{len(FEATURE_NAMES)} more errors",
        "type": "too_many_errors",
    }


def test_422_shortens_long_field_names(client: TestClient) -> None:
    response = client.post("/predict", json={**FIRST.features, "a" * 100_000: 0})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "a" * 100 + "..."]


def test_predict_batch_rejects_empty(client: TestClient) -> None:
    response = client.post("/predict/batch", json={"instances": []})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "instances"]


@pytest.mark.parametrize(
    "raw_value",
    ["NaN", "Infinity", "-Infinity", "1e999", '"5.1"', "true"],
)
def test_predict_rejects_bad_number_naming_field(
    client: TestClient, raw_value: str
) -> None:
    body = json.dumps({**FIRST.features, FEATURE_NAMES[-1]: "__value__"})
    content = body.replace('"__value__"', raw_value)
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", FEATURE_NAMES[-1]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {k: v for k, v in FIRST.features.items() if k != FEATURE_NAMES[-1]},
            FEATURE_NAMES[-1],
        ),
        ({**FIRST.features, "colour": "blue"}, "colour"),
        ({**FIRST.features, FEATURE_NAMES[0]: None}, FEATURE_NAMES[0]),
    ],
    ids=["missing", "unexpected", "null"],
)
def test_predict_rejects_bad_fields_naming_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_predict_rejects_malformed_json(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8",
        ('{"' + FEATURE_NAMES[0] + '": 1' + "0" * 5000 + "}").encode(),
        b"[" * 100_000,
    ],
    ids=["invalid-utf8", "integer-too-long", "nested-too-deep"],
)
def test_predict_rejects_unparseable_body(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_request_body_over_limit_is_413() -> None:
    settings = Settings(_env_file=None, max_body_bytes=64)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/predict/batch", json={"instances": [FIRST.features] * 2}
        )
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": "Content Too Large"}


def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/health/live", headers={"origin": "https://a.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origin() -> None:
    settings = Settings(_env_file=None, cors_origins=("https://a.example",))
    with TestClient(create_app(settings)) as client:
        response = client.get("/health/live", headers={"origin": "https://a.example"})
    assert response.headers["access-control-allow-origin"] == "https://a.example"


def test_openapi_describes_the_api(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/model"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["Features"]["examples"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_no_asset_from_another_host(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200, response.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets, response.text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset}"
        assert client.get(asset).status_code == 200, asset
    assert "://" not in response.text.replace("http://testserver", "")


def test_request_body_over_limit_without_a_length_is_413() -> None:
    # Sent in chunks, with no Content-Length: the limit counts what it reads.
    settings = Settings(_env_file=None, max_body_bytes=64)
    chunks = [b'{"instances": [', b" " * 60, b"]}"]
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/predict/batch",
            content=iter(chunks),
            headers={"content-type": "application/json"},
        )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": "Content Too Large"}
