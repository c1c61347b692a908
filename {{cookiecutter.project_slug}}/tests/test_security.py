import hmac
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app import security
from app.config import Settings, describe_errors
from app.main import create_app
from tests.conftest import FIRST, MODEL

BILLING = "billing-0123456789abcdef"
BATCH = "batch-jobs-fedcba9876543210"
KEYS = f"billing:{BILLING},batch-jobs:{BATCH}"
# Every route that serves the model, with a body it would accept.
PROTECTED = [
    ("POST", "/predict", FIRST.features),
    ("POST", "/predict/batch", {"instances": [FIRST.features]}),
    ("GET", "/model", None),
]
OPEN = ["/health/live", "/health/ready", "/docs", "/openapi.json"]


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    settings = Settings(_env_file=None, api_keys=KEYS)
    with TestClient(create_app(settings, MODEL)) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-key-0123456789"},
        {"x-api-key": BILLING[:-1]},
        {"authorization": f"Basic {BILLING}"},
        {"x-api-key": ""},
    ],
    ids=["none", "wrong", "one-short", "not-bearer", "empty"],
)
def test_a_model_route_without_a_valid_key_is_401(
    keyed: TestClient, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    response = keyed.request(method, path, json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert list(response.json()) == ["detail"]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {BILLING}"},
        {"authorization": f"bearer {BATCH}"},
        {"x-api-key": BILLING},
        {"x-api-key": BATCH},
    ],
    ids=["bearer-billing", "bearer-batch", "header-billing", "header-batch"],
)
def test_a_model_route_answers_each_configured_key(
    keyed: TestClient, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    response = keyed.request(method, path, json=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", OPEN)
def test_probes_and_docs_need_no_key_by_default(keyed: TestClient, path: str) -> None:
    response = keyed.get(path)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", OPEN[2:])
def test_other_paths_take_a_key_when_listed(path: str) -> None:
    settings = Settings(_env_file=None, api_keys=KEYS, api_keys_also_for=OPEN[2:])
    with TestClient(create_app(settings, MODEL)) as client:
        assert client.get(path).status_code == 401
        answered = client.get(path, headers={"authorization": f"Bearer {BATCH}"})
        assert answered.status_code == 200, answered.text
        assert client.get("/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("path", "shape"), [("/docs", "detail"), ("/v2/health/live", "error")]
)
def test_a_listed_path_is_refused_in_the_shape_of_its_api(
    path: str, shape: str
) -> None:
    settings = Settings(_env_file=None, api_keys=KEYS, api_keys_also_for=(path,))
    with TestClient(create_app(settings, MODEL)) as client:
        response = client.get(path)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert list(response.json()) == [shape]


def test_a_key_is_asked_for_before_the_body_is_read(keyed: TestClient) -> None:
    # Not JSON, and far over any size: refused for its missing key alone.
    response = keyed.post("/predict", content=b"{" * 10_000)
    assert response.status_code == 401, response.text


def test_without_keys_every_route_is_open(client: TestClient) -> None:
    for method, path, body in PROTECTED:
        response = client.request(method, path, json=body)
        assert response.status_code == 200, response.text


def test_the_openapi_document_declares_both_ways_to_send_a_key(
    keyed: TestClient,
) -> None:
    schema = keyed.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert schema["paths"]["/predict"]["post"]["security"] == [
        {"bearer": []},
        {"apiKey": []},
    ]
    assert "security" not in schema["paths"]["/health/live"]["get"]
    assert "security" in schema["paths"]["/v2/models/{name}/infer"]["post"]


def test_without_keys_the_openapi_document_declares_none(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert "security" not in schema["paths"]["/predict"]["post"]


def test_the_request_log_names_the_client_not_its_key(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.access")
    keyed.post("/predict", json=FIRST.features, headers={"x-api-key": BATCH})
    (record,) = [r for r in caplog.records if r.name == "app.access"]
    assert record.getMessage().endswith(" batch-jobs")
    assert record.client == "batch-jobs"  # type: ignore[attr-defined]


def test_a_key_never_appears_in_logs_or_answers(
    keyed: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [
        keyed.post("/predict", json=FIRST.features, headers={"x-api-key": key})
        for key in (BILLING, BILLING + "x", BATCH[:-1])
    ]
    seen = " ".join([caplog.text, *(r.text for r in answers)])
    for key in (BILLING, BATCH):
        assert key[4:-4] not in seen


def test_keys_are_compared_in_constant_time_with_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    keys = security.ApiKeys([("billing", BILLING), ("batch-jobs", BATCH)])
    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    assert keys.identify(BILLING) == "billing"
    assert keys.identify("x" * 40) is None
    # Every presented key was compared with both keys, as digests of one length.
    assert len(compared) == 4
    assert {len(a) for pair in compared for a in pair} == {32}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("billing", "entry 1 is not of the form name:key"),
        ("billing:short", "entry 1 (billing): the key is shorter than 16"),
        (f"a:{BILLING},a:{BATCH}", "entry 2: the name 'a' is taken"),
        (f"a:{BILLING},b:{BILLING}", "entry 2 (b): the same key as a"),
        (f"a b:{BILLING}", "entry 1: a name is"),
    ],
)
def test_malformed_keys_stop_start_up_naming_the_entry_not_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("APP_API_KEYS", value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    [line] = describe_errors(caught.value)
    assert line.startswith("ERROR: the value is not a valid APP_API_KEYS: ")
    assert message in line
    assert BILLING not in line
    assert "short" not in line.split(":", 2)[-1].replace("shorter", "")


def test_a_key_file_is_read_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "RELOAD_SECONDS", 0)
    path = tmp_path / "keys"
    path.write_text(f"# rotated monthly\nbilling:{BILLING}\n")
    keys = security.ApiKeys(file=path)
    assert keys.identify(BILLING) == "billing"
    # A Secret's update replaces the file: the new key works, the old does not.
    replacement = tmp_path / "keys.new"
    replacement.write_text(f"billing:{BATCH}\n")
    os.replace(replacement, path)
    assert keys.identify(BATCH) == "billing"
    assert keys.identify(BILLING) is None
    # A broken file keeps the keys that worked.
    path.write_text("billing:short\n")
    assert keys.identify(BATCH) == "billing"


def test_a_key_file_is_checked_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"billing:{BILLING}\n\nbatch:tooshort\n")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, api_keys_file=path)
    [line] = describe_errors(caught.value)
    assert "line 3 (batch): the key is shorter than 16 characters" in line
    assert "tooshort" not in line


def test_the_inference_protocol_takes_a_key_for_its_model_routes(
    keyed: TestClient,
) -> None:
    name, version = MODEL.name, MODEL.version
    tensor = {
        "name": "features",
        "shape": [1, len(FIRST.features)],
        "datatype": "FP32",
        "data": list(FIRST.features.values()),
    }
    routes = [
        ("POST", f"/v2/models/{name}/infer", {"inputs": [tensor]}),
        ("POST", f"/v2/models/{name}/versions/{version}/infer", {"inputs": [tensor]}),
        ("GET", f"/v2/models/{name}", None),
        ("GET", f"/v2/models/{name}/versions/{version}/ready", None),
    ]
    for method, path, body in routes:
        response = keyed.request(method, path, json=body)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert list(response.json()) == ["error"]
        response = keyed.request(
            method, path, json=body, headers={"authorization": f"Bearer {BILLING}"}
        )
        assert response.status_code == 200, response.text
    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        assert keyed.get(path).status_code == 200, path
