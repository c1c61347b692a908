"""The Kubernetes manifests agree with the service they deploy.

The port, the health routes, the settings, the drain time, the API key file,
the metrics an autoscaler asks for and the image's user come from the service
itself (``Settings``, the app's routes, the Dockerfile), so a change to the
service that its manifests do not follow fails here.
"""

import base64
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app import security
from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
INFERENCE_SERVICE = MANIFESTS / "kserve" / "inferenceservice.yaml"
# The Secret the pods read their API keys from, as an example with a placeholder.
KEY_SECRET_EXAMPLE = MANIFESTS / "secrets" / "api-keys.example.yaml"
# What KEDA scales on, when the project has it.
SCALED_OBJECTS = MANIFESTS / "keda"
# Keys of the service's own format, standing in for the Secret's, which only
# the cluster has.
STAND_IN_KEYS = "deploy-test:" + "k" * 32
# A metric's name in front of its label matchers, in a PromQL query.
METRIC_IN_QUERY = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
DOCKERFILE = ROOT / "Dockerfile"
ENV_PREFIX = Settings.model_config.get("env_prefix", "")
# The container port's name, by which the Service and the probes refer to it.
PORT_NAME = "http"
# Every pod listens where the kubelet and the Service reach it, and runs one
# worker: scale with replicas instead.
POD_SETTINGS = {"host": "0.0.0.0", "workers": "1"}  # noqa: S104
# The route function each probe must reach.
PROBE_HANDLERS = {
    "startupProbe": "live",
    "livenessProbe": "live",
    "readinessProbe": "ready",
}
# What Kubernetes waits after SIGTERM when a pod does not say.
DEFAULT_GRACE_SECONDS = 30
# What the InferenceService must run exactly as the Deployment does.
SAME_IN_CONTAINER = (
    "ports",
    "resources",
    "startupProbe",
    "livenessProbe",
    "readinessProbe",
    "lifecycle",
    "securityContext",
    "volumeMounts",
)
SAME_IN_POD = (
    "automountServiceAccountToken",
    "enableServiceLinks",
    "terminationGracePeriodSeconds",
    "securityContext",
    "volumes",
)


@dataclass(frozen=True)
class Pod:
    """What a manifest says its pods run: the Deployment's, or KServe's."""

    annotations: dict[str, str]
    spec: dict[str, Any]  # the pod spec (the predictor, for KServe)
    container: dict[str, Any]
    environment: dict[str, str]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def kustomization() -> dict[str, Any]:
    return dict(load(MANIFESTS / "kustomization.yaml"))


def objects() -> dict[str, dict[str, Any]]:
    """The base's objects by kind, as the kustomization lists them."""
    documents = [load(MANIFESTS / name) for name in kustomization()["resources"]]
    return {document["kind"]: document for document in documents}


def config_map_settings() -> dict[str, str]:
    """The settings the kustomization's ConfigMap generator gives the pods."""
    literals = [
        literal
        for generator in kustomization().get("configMapGenerator", [])
        for literal in generator.get("literals", [])
    ]
    return dict(literal.split("=", 1) for literal in literals)


def environment(container: dict[str, Any], from_config_map: bool) -> dict[str, str]:
    found = config_map_settings() if from_config_map else {}
    for variable in container.get("env", []):
        found[variable["name"]] = str(variable.get("value", ""))
    return found


def deployment_pod() -> Pod:
    template = objects()["Deployment"]["spec"]["template"]
    [container] = template["spec"]["containers"]
    return Pod(
        template["metadata"].get("annotations", {}),
        template["spec"],
        container,
        environment(container, from_config_map="envFrom" in container),
    )


def kserve_pod() -> Pod:
    predictor = load(INFERENCE_SERVICE)["spec"]["predictor"]
    [container] = predictor["containers"]
    return Pod(
        predictor.get("annotations", {}),
        predictor,
        container,
        environment(container, from_config_map=False),
    )


PODS = [
    pytest.param(deployment_pod, id="deployment"),
    pytest.param(kserve_pod, id="kserve"),
]


@pytest.fixture(params=PODS)
def pod(request: pytest.FixtureRequest) -> Pod:
    found: Pod = request.param()
    return found


def variable(field: str) -> str:
    """The environment variable that sets a field of Settings."""
    return f"{ENV_PREFIX}{field}".upper()


def settings_of(pod: Pod, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The settings the service reads in this pod, its key file standing in."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(variable(name), raising=False)
    for name, value in pod.environment.items():
        monkeypatch.setenv(name, value)
    if variable("api_keys_file") in pod.environment:
        stand_in = tmp_path / "api-keys"
        stand_in.write_text(f"{STAND_IN_KEYS}\n", encoding="utf-8")
        monkeypatch.setenv(variable("api_keys_file"), str(stand_in))
    return Settings(_env_file=None)


def example_secret_files() -> tuple[str, dict[str, str]]:
    """The example key Secret's name, and the files it holds by name."""
    secret = load(KEY_SECRET_EXAMPLE)
    files = {
        name: base64.b64decode(value).decode()
        for name, value in secret.get("data", {}).items()
    }
    files.update(secret.get("stringData", {}))
    return secret["metadata"]["name"], files


def scaled_objects() -> list[dict[str, Any]]:
    """The KEDA ScaledObjects of the project; none without KEDA."""
    documents = [load(path) for path in sorted(SCALED_OBJECTS.glob("*.yaml"))]
    return [document for document in documents if document["kind"] == "ScaledObject"]


def served_metrics() -> set[str]:
    """The names of the metrics the app serves; none without a metrics route."""
    app = create_app(Settings(_env_file=None))
    paths = [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute) and route.endpoint.__module__ == "app.metrics"
    ]
    if not paths:
        return set()
    with TestClient(app) as client:
        response = client.get(paths[0])
    assert response.status_code == 200, response.text
    return set(re.findall(r"^# TYPE (\S+)", response.text, re.MULTILINE))


def get_routes() -> dict[str, APIRoute]:
    """The app's GET routes by path."""
    app = create_app(Settings(_env_file=None))
    return {
        route.path: route
        for route in app.routes
        if isinstance(route, APIRoute) and "GET" in (route.methods or ())
    }


def dockerfile_number(instruction: str) -> int:
    found = re.search(rf"^{instruction}\s+(\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert found, f"no numeric {instruction} in the Dockerfile"
    return int(found.group(1))


def test_every_setting_is_a_valid_field_of_settings(
    pod: Pod, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fields = {variable(name) for name in Settings.model_fields}
    assert sorted(set(pod.environment) - fields) == []
    try:
        settings_of(pod, monkeypatch, tmp_path)
    except ValidationError as error:
        pytest.fail(f"the pod's settings are not valid: {error}")


def test_pod_listens_everywhere_with_one_worker(pod: Pod) -> None:
    wanted = {variable(name): value for name, value in POD_SETTINGS.items()}
    assert {name: pod.environment.get(name) for name in wanted} == wanted


def test_container_port_is_where_the_service_listens(
    pod: Pod, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = settings_of(pod, monkeypatch, tmp_path).port
    ports = {p.get("name"): p["containerPort"] for p in pod.container["ports"]}
    assert ports.get(PORT_NAME) == port
    assert dockerfile_number("EXPOSE") == port


@pytest.mark.parametrize("probe", list(PROBE_HANDLERS))
def test_probe_asks_the_health_route_on_the_named_port(pod: Pod, probe: str) -> None:
    request = pod.container[probe]["httpGet"]
    routes = get_routes()
    assert request["path"] in routes, f"no GET {request['path']} in {sorted(routes)}"
    assert routes[request["path"]].endpoint.__name__ == PROBE_HANDLERS[probe]
    assert request["port"] == PORT_NAME


def test_scrape_annotations_point_to_the_metrics_route(
    pod: Pod, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    metrics_paths = [
        path
        for path, route in get_routes().items()
        if route.endpoint.__module__ == "app.metrics"
    ]
    scrape = {
        key: value
        for key, value in pod.annotations.items()
        if key.startswith("prometheus.io/")
    }
    if not metrics_paths:
        assert scrape == {}, "scrape annotations, but the app serves no metrics"
        return
    assert scrape == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(settings_of(pod, monkeypatch, tmp_path).port),
        "prometheus.io/path": metrics_paths[0],
    }


def test_grace_period_covers_the_pre_stop_pause_and_the_drain(
    pod: Pod, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    drain = settings_of(pod, monkeypatch, tmp_path).timeout_graceful_shutdown
    grace = pod.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    command = pod.container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert grace > int(command[1]) + drain


def test_pod_runs_as_the_images_user(pod: Pod) -> None:
    security = {
        **pod.spec.get("securityContext", {}),
        **pod.container.get("securityContext", {}),
    }
    assert security.get("runAsUser") == dockerfile_number("USER")


def test_inference_service_runs_as_the_deployment_does() -> None:
    deployment, kserve = deployment_pod(), kserve_pod()
    assert {f: kserve.container.get(f) for f in SAME_IN_CONTAINER} == {
        f: deployment.container.get(f) for f in SAME_IN_CONTAINER
    }
    assert {f: kserve.spec.get(f) for f in SAME_IN_POD} == {
        f: deployment.spec.get(f) for f in SAME_IN_POD
    }
    assert kserve.environment == deployment.environment
    port = "prometheus.io/port"
    assert kserve.annotations.get(port) == deployment.annotations.get(port)


def test_inference_service_runs_the_bases_image() -> None:
    [image] = kustomization()["images"]
    assert kserve_pod().container["image"] == f"{image['newName']}:{image['newTag']}"


def test_inference_service_scales_as_the_autoscaler_does() -> None:
    autoscaler = objects()["HorizontalPodAutoscaler"]["spec"]
    [target] = autoscaler["metrics"]
    predictor = kserve_pod().spec
    assert {
        "minReplicas": predictor.get("minReplicas"),
        "maxReplicas": predictor.get("maxReplicas"),
        "scaleMetric": predictor.get("scaleMetric"),
        "scaleTarget": predictor.get("scaleTarget"),
    } == {
        "minReplicas": autoscaler["minReplicas"],
        "maxReplicas": autoscaler["maxReplicas"],
        "scaleMetric": target["resource"]["name"],
        "scaleTarget": target["resource"]["target"]["averageUtilization"],
    }


def test_key_file_is_in_the_mounted_secret(pod: Pod) -> None:
    key_file = pod.environment.get(variable("api_keys_file"))
    if key_file is None:
        return  # no key file in this pod: nothing to agree on
    path = PurePosixPath(key_file)
    mounts = {
        PurePosixPath(mount["mountPath"]): mount
        for mount in pod.container.get("volumeMounts", [])
    }
    assert path.parent in mounts, f"nothing is mounted at {path.parent}"
    mount = mounts[path.parent]
    # The kubelet never updates a subPath mount: a rotated key would need a restart.
    assert "subPath" not in mount
    assert "subPathExpr" not in mount
    volumes = {volume["name"]: volume for volume in pod.spec.get("volumes", [])}
    secret = volumes[mount["name"]].get("secret")
    assert secret is not None, f"volume {mount['name']} is not a Secret"
    name, files = example_secret_files()
    assert secret["secretName"] == name
    # An optional Secret that is missing leaves no file: the service would not start.
    assert not secret.get("optional", False)
    projected = {item["path"]: item["key"] for item in secret.get("items", [])} or {
        file: file for file in files
    }
    assert projected.get(path.name) in files, f"the Secret holds no {path.name}"


def test_example_secret_holds_no_usable_key() -> None:
    # Applied as it is, the example must stop the service, not let in everyone
    # who has read the placeholder.
    for file, text in example_secret_files()[1].items():
        with pytest.raises(security.ApiKeyError):
            security.parse(text.splitlines(), f"{file}: line")


def test_scaled_object_scales_as_the_autoscaler_does() -> None:
    autoscaler = objects()["HorizontalPodAutoscaler"]["spec"]
    [target] = autoscaler["metrics"]
    for scaled in scaled_objects():
        spec = scaled["spec"]
        advanced = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        cpu = [t["metadata"] for t in spec["triggers"] if t["type"] == "cpu"]
        assert {
            "scaleTargetRef": spec["scaleTargetRef"],
            "minReplicas": spec.get("minReplicaCount"),
            "maxReplicas": spec.get("maxReplicaCount"),
            "behavior": advanced.get("behavior"),
            "cpu": cpu,
        } == {
            "scaleTargetRef": autoscaler["scaleTargetRef"],
            "minReplicas": autoscaler["minReplicas"],
            "maxReplicas": autoscaler["maxReplicas"],
            "behavior": autoscaler.get("behavior"),
            "cpu": [{"value": str(target["resource"]["target"]["averageUtilization"])}],
        }


def test_scaled_object_asks_for_metrics_the_service_serves() -> None:
    queries = [
        trigger["metadata"]["query"]
        for scaled in scaled_objects()
        for trigger in scaled["spec"]["triggers"]
        if trigger["type"] == "prometheus"
    ]
    asked = {name for query in queries for name in METRIC_IN_QUERY.findall(query)}
    assert sorted(asked - served_metrics()) == []
    # A ServiceMonitor on the Service names the job after it.
    job = f'job="{objects()["Service"]["metadata"]["name"]}"'
    assert [query for query in queries if job not in query] == []
