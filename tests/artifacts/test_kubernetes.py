"""The Kubernetes manifests: valid for the API server, and in step with the app.

What the manifests must agree with (the port, the health routes, the settings,
the shutdown time, the image's user) is read from the rendered app and
Dockerfile, never written down here, so a render whose app changes without its
manifests fails ``agreement_problems``; the drift tests below prove it does.
"""

from __future__ import annotations

import ast
import functools
import lzma
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.harness import DATA, HOSTILE, MENTIONS, RESIDUE, BakedProject, bake

# Pinned, so that a new kubernetes-validate cannot change the verdict: the
# oldest release the manifests promise to work on, and the newest it ships.
KUBERNETES_VERSIONS = ("1.30", "1.37")
MANIFESTS = Path("deploy/kubernetes")
KUSTOMIZATION = "kustomization.yaml"
# The alternative to the base for clusters with KServe, outside the base.
INFERENCE_SERVICE = MANIFESTS / "kserve" / "inferenceservice.yaml"
# KServe's own CustomResourceDefinition (see tests/data/README.md).
KSERVE_CRD = DATA / "kserve/serving.kserve.io_inferenceservices.yaml.xz"
KSERVE_API_VERSION = "serving.kserve.io/v1beta1"
BASE_KINDS = ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
# The container port's name, by which the Service and the probes refer to it.
PORT_NAME = "http"
# Settings every pod must carry: listen where the kubelet and the Service can
# reach it, and run one worker (scale with replicas instead).
POD_SETTINGS = {"HOST": "0.0.0.0", "WORKERS": "1"}  # noqa: S104
# The handler each probe must reach: the app's own names for the two checks.
PROBE_HANDLERS = {"livenessProbe": "live", "readinessProbe": "ready"}
# What Kubernetes waits after SIGTERM when a pod does not say.
DEFAULT_GRACE_SECONDS = 30
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
METRICS_WORDS = re.compile(MENTIONS["include_metrics"], re.IGNORECASE)


# --- what the rendered app declares -------------------------------------------


@dataclass(frozen=True)
class ServiceFacts:
    """The service as its own source declares it, read without importing it."""

    env_prefix: str
    settings: dict[str, str]  # field of Settings -> its annotation
    port: int  # the default of Settings.port
    routes: dict[str, str]  # path of each GET route -> the function serving it
    metrics_paths: frozenset[str]  # GET routes added by app/metrics.py
    graceful_shutdown_seconds: int
    image_user: int | None  # the uid of the Dockerfile's USER, if there is one
    image_port: int | None  # the Dockerfile's EXPOSE

    def setting_of(self, variable: str) -> str | None:
        """The Settings field an environment variable sets, if any."""
        if not variable.startswith(self.env_prefix):
            return None
        name = variable.removeprefix(self.env_prefix).lower()
        return name if name in self.settings else None


def read_service_facts(project: Path) -> ServiceFacts:
    settings = _class_named(_parse(project / "app/config.py"), "Settings")
    fields = {
        node.target.id: node
        for node in settings.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    metrics = project / "app/metrics.py"
    metrics_routes = _get_routes(metrics) if metrics.is_file() else {}
    dockerfile = project / "Dockerfile"
    image = dockerfile.read_text() if dockerfile.is_file() else ""
    return ServiceFacts(
        env_prefix=_env_prefix(settings),
        settings={name: ast.unparse(node.annotation) for name, node in fields.items()},
        port=_default_of(fields["port"]),
        routes={**_get_routes(project / "app/main.py"), **metrics_routes},
        metrics_paths=frozenset(metrics_routes),
        graceful_shutdown_seconds=_default_of(fields["timeout_graceful_shutdown"]),
        image_user=_image_user(image),
        image_port=_first_number(r"^EXPOSE\s+(\d+)", image),
    )


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _class_named(module: ast.Module, name: str) -> ast.ClassDef:
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"no class {name} in the module")


def _env_prefix(settings: ast.ClassDef) -> str:
    for node in ast.walk(settings):
        if isinstance(node, ast.keyword) and node.arg == "env_prefix":
            return str(ast.literal_eval(node.value))
    return ""


def _default_of(field: ast.AnnAssign) -> Any:
    """``x: int = 1`` or ``x: int = Field(default=1, ...)`` or ``Field(1, ...)``."""
    value = field.value
    if isinstance(value, ast.Call):
        defaults = [k.value for k in value.keywords if k.arg == "default"]
        value = defaults[0] if defaults else value.args[0]
    assert value is not None, f"{ast.unparse(field)} has no default"
    return ast.literal_eval(value)


def _get_routes(path: Path) -> dict[str, str]:
    """``@router.get("/path")`` decorators and ``add_api_route("/path", f)`` calls."""
    routes = {}
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if _is_call_of(decorator, "get"):
                    routes[_literal_path(decorator)] = node.name
        elif _is_call_of(node, "add_api_route"):
            methods = [k.value for k in node.keywords if k.arg == "methods"]
            if not methods or "GET" in ast.literal_eval(methods[0]):
                routes[_literal_path(node)] = ast.unparse(node.args[1])
    return routes


def _is_call_of(node: ast.expr, method: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
    )


def _literal_path(call: ast.Call) -> str:
    return str(ast.literal_eval(call.args[0]))


def _image_user(dockerfile: str) -> int | None:
    """The uid of the Dockerfile's last USER, by number or by its ``useradd``."""
    lines = dockerfile.replace("\\\n", " ").splitlines()  # join continued lines
    users = [
        line.split()[1].split(":")[0] for line in lines if line.startswith("USER ")
    ]
    if not users:
        return None
    if users[-1].isdigit():
        return int(users[-1])
    for line in lines:
        words = line.split()
        if "useradd" in words and words[-1] == users[-1]:
            return _first_number(r"(?:--uid|-u)[= ](\d+)", line)
    return None


def _first_number(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text, re.MULTILINE)
    return int(found.group(1)) if found else None


# --- what the manifests say ---------------------------------------------------


def manifest_files(project: Path) -> list[Path]:
    return sorted(
        path
        for path in (project / MANIFESTS).iterdir()
        if path.suffix in {".yaml", ".yml"} and path.name != KUSTOMIZATION
    )


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def read_kustomization(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / MANIFESTS / KUSTOMIZATION).read_text())


def read_objects(project: Path) -> dict[str, dict[str, Any]]:
    """The base's objects by kind (one of each), generated ConfigMaps included."""
    objects: dict[str, dict[str, Any]] = {}
    for path in manifest_files(project):
        for document in load_documents(path):
            assert document["kind"] not in objects, f"two {document['kind']}s"
            objects[document["kind"]] = document
    for config_map in generated_config_maps(project):
        objects.setdefault("ConfigMap", config_map)
    return objects


def generated_config_maps(project: Path) -> Iterator[dict[str, Any]]:
    """What each configMapGenerator entry makes, less kustomize's hash suffix."""
    for generator in read_kustomization(project).get("configMapGenerator", []):
        lines = list(generator.get("literals", []))
        for env_file in generator.get("envs", []):
            lines += (project / MANIFESTS / env_file).read_text().splitlines()
        pairs = (
            line.split("=", 1)
            for line in lines
            if line.strip() and not line.startswith("#")
        )
        yield {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": dict(pairs),
        }


def container_environment(
    objects: dict[str, dict[str, Any]], container: dict[str, Any]
) -> dict[str, str]:
    """The variables the container gets: its ConfigMaps, then its own ``env``."""
    config_map = objects.get("ConfigMap", {})
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if source.get("configMapRef", {}).get("name") == config_map["metadata"]["name"]:
            environment.update(config_map.get("data", {}))
    for variable in container.get("env", []):
        environment[variable["name"]] = str(variable.get("value", ""))
    return environment


def the_container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = pod_spec(objects)["containers"]
    assert len(containers) == 1, "one container per pod"
    return containers[0]


def pod_spec(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objects["Deployment"]["spec"]["template"]["spec"]


def read_inference_service(project: Path) -> dict[str, Any] | None:
    path = project / INFERENCE_SERVICE
    if not path.is_file():
        return None
    [document] = load_documents(path)
    return document


@dataclass(frozen=True)
class Pod:
    """What a manifest says its pods run: the Deployment's, or KServe's."""

    kind: str
    annotations: dict[str, str]
    spec: dict[str, Any]  # the pod spec (the predictor, for KServe)
    container: dict[str, Any]
    environment: dict[str, str]


def pods_of(project: Path, objects: dict[str, dict[str, Any]]) -> list[Pod]:
    template = objects["Deployment"]["spec"]["template"]
    container = the_container(objects)
    pods = [
        Pod(
            kind="Deployment",
            annotations=template["metadata"].get("annotations", {}),
            spec=template["spec"],
            container=container,
            environment=container_environment(objects, container),
        )
    ]
    inference_service = read_inference_service(project)
    if inference_service is not None:
        predictor = inference_service["spec"]["predictor"]
        [container] = predictor["containers"]
        pods.append(
            Pod(
                kind="InferenceService",
                annotations=predictor.get("annotations", {}),
                spec=predictor,
                container=container,
                environment=container_environment(objects, container),
            )
        )
    return pods


def pre_stop_pause(container: dict[str, Any]) -> int:
    """Seconds the preStop hook waits before Kubernetes sends SIGTERM."""
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    command = pre_stop.get("exec", {}).get("command", [])
    if command[:1] == ["sleep"]:
        return int(command[1])
    return int(pre_stop.get("sleep", {}).get("seconds", 0))


# --- the agreement ------------------------------------------------------------


def agreement_problems(project: Path) -> list[str]:
    """Every way the manifests disagree with the app and image they deploy."""
    facts = read_service_facts(project)
    objects = read_objects(project)
    pods = pods_of(project, objects)
    problems = []
    for pod in pods:
        problems += [f"{pod.kind}: {p}" for p in pod_problems(facts, pod)]
    port = int(pods[0].environment.get(f"{facts.env_prefix}PORT", facts.port))
    if facts.image_port != port:
        problems.append(f"the Dockerfile exposes {facts.image_port}, not {port}")
    inference_service = read_inference_service(project)
    if inference_service is not None:
        [image] = read_kustomization(project)["images"]
        problems += [
            f"InferenceService: {p}"
            for p in kserve_problems(
                objects,
                inference_service,
                f"{image['newName']}:{image['newTag']}",
                *pods,
            )
        ]
    return problems


def pod_problems(facts: ServiceFacts, pod: Pod) -> list[str]:
    """Every way one manifest's pods disagree with the app they run."""
    container, environment = pod.container, pod.environment
    problems = []

    port_variable = f"{facts.env_prefix}PORT"
    port = int(environment.get(port_variable, facts.port))
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    if ports.get(PORT_NAME) != port:
        problems.append(
            f"containerPort {PORT_NAME!r} is {ports.get(PORT_NAME)}, but the service"
            f" listens on {port} (Settings.port default, or {port_variable})"
        )
    for variable, value in environment.items():
        field = facts.setting_of(variable)
        if field is None:
            problems.append(f"{variable} sets no field of Settings in app/config.py")
        elif not _fits(facts.settings[field], value):
            problems.append(f"{variable}={value} is no {facts.settings[field]}")
    for name, value in POD_SETTINGS.items():
        variable = f"{facts.env_prefix}{name}"
        if environment.get(variable) != value:
            problems.append(f"{variable} is {environment.get(variable)!r}, not {value}")

    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(probe_name, {}).get("httpGet", {})
        path, handler = probe.get("path"), PROBE_HANDLERS.get(probe_name)
        if path not in facts.routes:
            problems.append(
                f"{probe_name} asks {path}, which is no GET route of the app"
                f" (it has {sorted(facts.routes)})"
            )
        elif handler and facts.routes[path] != handler:
            problems.append(
                f"{probe_name} asks {path}, served by {facts.routes[path]}()"
                f" instead of {handler}()"
            )
        if probe.get("port") != PORT_NAME:
            problems.append(f"{probe_name} port is not the named port {PORT_NAME!r}")

    scrape = {
        k: v for k, v in pod.annotations.items() if k.startswith("prometheus.io/")
    }
    if facts.metrics_paths:
        wanted = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": scrape.get("prometheus.io/path"),
        }
        if scrape != wanted or scrape["prometheus.io/path"] not in facts.metrics_paths:
            problems.append(
                f"scrape annotations {scrape} do not point to the metrics route"
                f" {sorted(facts.metrics_paths)} on port {port}"
            )
    elif scrape:
        problems.append(f"scrape annotations {scrape}, but the app serves no metrics")

    grace = pod.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    needed = facts.graceful_shutdown_seconds + pre_stop_pause(container)
    if grace <= needed:
        problems.append(
            f"terminationGracePeriodSeconds {grace} leaves no room for the preStop"
            f" pause and APP_TIMEOUT_GRACEFUL_SHUTDOWN ({needed} s together)"
        )

    user = {
        **pod.spec.get("securityContext", {}),
        **container.get("securityContext", {}),
    }
    if facts.image_user is None or user.get("runAsUser") != facts.image_user:
        problems.append(
            f"runAsUser {user.get('runAsUser')} is not the uid of the Dockerfile's"
            f" USER ({facts.image_user})"
        )
    return problems


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


def kserve_problems(
    objects: dict[str, dict[str, Any]],
    inference_service: dict[str, Any],
    base_image: str,
    deployment: Pod,
    kserve: Pod,
) -> list[str]:
    """Every way the InferenceService runs other than the base does."""
    problems = []
    if inference_service["apiVersion"] != KSERVE_API_VERSION:
        problems.append(f"apiVersion is not {KSERVE_API_VERSION}")
    for field in SAME_IN_CONTAINER:
        if kserve.container.get(field) != deployment.container.get(field):
            problems.append(f"the container's {field} differs from the Deployment's")
    for field in SAME_IN_POD:
        if kserve.spec.get(field) != deployment.spec.get(field):
            problems.append(f"the pod's {field} differs from the Deployment's")
    if kserve.environment != deployment.environment:
        problems.append(
            f"the settings {kserve.environment} differ from the Deployment's"
            f" {deployment.environment}"
        )
    if kserve.annotations.get("prometheus.io/port") != deployment.annotations.get(
        "prometheus.io/port"
    ):
        problems.append("the scrape port differs from the Deployment's")
    if kserve.container.get("image") != base_image:
        problems.append(
            f"image {kserve.container.get('image')} is not the base's {base_image}"
        )
    autoscaler = objects["HorizontalPodAutoscaler"]["spec"]
    [target] = autoscaler["metrics"]
    scaling = {
        "minReplicas": autoscaler["minReplicas"],
        "maxReplicas": autoscaler["maxReplicas"],
        "scaleMetric": target["resource"]["name"],
        "scaleTarget": target["resource"]["target"]["averageUtilization"],
    }
    for field, wanted in scaling.items():
        if kserve.spec.get(field) != wanted:
            problems.append(
                f"{field} is {kserve.spec.get(field)}, the autoscaler's is {wanted}"
            )
    return problems


def _fits(annotation: str, value: str) -> bool:
    """Whether pydantic could read the value for a field of this type."""
    if annotation == "int":
        return re.fullmatch(r"-?\d+", value) is not None
    if annotation == "bool":
        return value.lower() in {"true", "false", "1", "0", "yes", "no", "on", "off"}
    return True


# --- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, BakedProject]:
    """Kubernetes on, with metrics on and off; only read by the tests."""
    return {
        metrics: bake(
            tmp_path_factory.mktemp("kubernetes"),
            include_kubernetes=True,
            include_metrics=metrics,
        )
        for metrics in (True, False)
    }


@pytest.fixture(params=[True, False], ids=["metrics-on", "metrics-off"])
def project(
    request: pytest.FixtureRequest, renders: dict[bool, BakedProject]
) -> BakedProject:
    return renders[request.param]


def copy_of(project: BakedProject, tmp_path: Path) -> Path:
    return Path(shutil.copytree(project.path, tmp_path / project.path.name))


# --- valid Kubernetes ---------------------------------------------------------


def schema_errors(document: dict[str, Any], version: str) -> list[str]:
    where = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.absolute_path)
        return [f"{where}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{where}: {error.message}"]
    return []


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_for_the_kubernetes_api(
    project: BakedProject, kubernetes_version: str
) -> None:
    documents = [
        doc for path in manifest_files(project.path) for doc in load_documents(path)
    ]
    documents += generated_config_maps(project.path)
    assert len(documents) == len(BASE_KINDS) + 1
    errors = [
        error for doc in documents for error in schema_errors(doc, kubernetes_version)
    ]
    assert errors == []


def test_schema_validation_rejects_a_misspelt_field(project: BakedProject) -> None:
    objects = read_objects(project.path)
    assert schema_errors(objects["Deployment"], KUBERNETES_VERSIONS[-1]) == []
    the_container(objects)["readinesProbe"] = {}
    assert schema_errors(objects["Deployment"], KUBERNETES_VERSIONS[-1]) != []


@functools.cache
def inference_service_schema() -> dict[str, Any]:
    """The v1beta1 schema of KServe's CRD, strict about unknown fields.

    The API server prunes fields a structural schema does not know; rejecting
    them instead, as kubernetes-validate's strict mode does, catches a typo.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with lzma.open(KSERVE_CRD) as compressed:
        crd = yaml.load(compressed, Loader=loader)  # noqa: S506 (a safe loader)
    assert crd["spec"]["names"]["kind"] == "InferenceService"
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return _closed(version["schema"]["openAPIV3Schema"])


def _closed(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


def kserve_schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(inference_service_schema())
    return [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_inference_service_is_valid_for_kserve(project: BakedProject) -> None:
    inference_service = read_inference_service(project.path)
    assert inference_service is not None
    assert inference_service["apiVersion"] == KSERVE_API_VERSION
    assert inference_service["kind"] == "InferenceService"
    assert kserve_schema_errors(inference_service) == []


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("container", "readinesProbe", {}),
        ("container", "resources", {"requests": {"cpu": "half"}}),
        ("predictor", "minReplicas", "two"),
        ("predictor", "scaleMetric", "latency"),
    ],
)
def test_kserve_schema_rejects_a_wrong_field(
    project: BakedProject, where: str, field: str, value: Any
) -> None:
    inference_service = read_inference_service(project.path)
    assert inference_service is not None
    predictor = inference_service["spec"]["predictor"]
    target = predictor["containers"][0] if where == "container" else predictor
    target[field] = value
    errors = kserve_schema_errors(inference_service)
    assert errors != []
    assert field in " ".join(errors)


def test_kustomization_lists_exactly_the_manifests_present(
    project: BakedProject,
) -> None:
    kustomization = read_kustomization(project.path)
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == [path.name for path in manifest_files(project.path)]


def test_base_has_a_deployment_service_autoscaler_and_budget(
    project: BakedProject,
) -> None:
    objects = read_objects(project.path)
    assert sorted(set(objects) - {"ConfigMap"}) == BASE_KINDS
    assert objects["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    assert objects["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
    assert objects["Service"]["spec"]["type"] == "ClusterIP"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kustomize_builds_the_base_into_valid_objects(project: BakedProject) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(project.path / MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    objects = {doc["kind"]: doc for doc in yaml.safe_load_all(built.stdout) if doc}
    assert sorted(objects) == sorted([*BASE_KINDS, "ConfigMap"])
    for document in objects.values():
        assert schema_errors(document, KUBERNETES_VERSIONS[-1]) == []
    container = the_container(objects)
    # The ConfigMap's name carries a hash of its data, and the pods follow it.
    assert container["envFrom"] == [
        {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}}
    ]
    image = read_kustomization(project.path)["images"][0]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"


# --- agreement with the service -----------------------------------------------


def test_manifests_agree_with_the_service_they_deploy(project: BakedProject) -> None:
    assert agreement_problems(project.path) == []


def test_service_facts_are_read_from_the_rendered_app(project: BakedProject) -> None:
    facts = read_service_facts(project.path)
    assert facts.env_prefix == "APP_"
    assert {"host", "port", "workers", "log_level"} <= set(facts.settings)
    assert facts.settings["port"] == "int"
    assert isinstance(facts.port, int)
    assert {"live", "ready"} <= set(facts.routes.values())
    assert bool(facts.metrics_paths) == project.has_file("app/metrics.py")
    assert facts.graceful_shutdown_seconds > 0
    assert facts.image_user is not None
    assert facts.image_user > 0


# (file, pattern, replacement, words the report must contain): edits to a render
# that its manifests do not follow, each of which must be reported.
DRIFTS = {
    "app-port-default-9000": (
        "app/config.py",
        r"(port: int = Field\(default=)\d+",
        r"\g<1>9000",
        "but the service listens on 9000",
    ),
    "app-ready-route-moved": (
        "app/main.py",
        r'"(/health/ready)"',
        r'"\1/now"',
        "readinessProbe",
    ),
    "app-live-route-moved": (
        "app/main.py",
        r'"(/health/live)"',
        r'"\1/now"',
        "livenessProbe",
    ),
    "app-metrics-route-moved": (
        "app/metrics.py",
        r'add_api_route\("/metrics"',
        'add_api_route("/stats"',
        "scrape annotations",
    ),
    "app-setting-renamed": (
        "app/config.py",
        r"\bmax_batch_size:",
        "batch_limit:",
        "APP_MAX_BATCH_SIZE",
    ),
    "app-drains-longer": (
        "app/config.py",
        r"(timeout_graceful_shutdown: int = Field\(default=)\d+",
        r"\g<1>60",
        "terminationGracePeriodSeconds",
    ),
    "image-user-changed": (
        "Dockerfile",
        r"^USER \S+$",
        "USER 20002:20002",
        "runAsUser",
    ),
    "image-exposes-another-port": (
        "Dockerfile",
        r"^EXPOSE \d+$",
        "EXPOSE 9000",
        "the Dockerfile exposes 9000",
    ),
    "manifest-readiness-path-wrong": (
        "deploy/kubernetes/deployment.yaml",
        r"(readinessProbe:\s+httpGet:\s+path: )\S+",
        r"\1/healthz",
        "readinessProbe asks /healthz",
    ),
    "manifest-probes-swapped": (
        "deploy/kubernetes/deployment.yaml",
        r"(readinessProbe:\s+httpGet:\s+path: )\S+",
        r"\1/health/live",
        "served by live() instead of ready()",
    ),
    "manifest-probe-port-numeric": (
        "deploy/kubernetes/deployment.yaml",
        r"(livenessProbe:\s+httpGet:\s+path: \S+\s+port: )\S+",
        r"\g<1>8080",
        "livenessProbe port",
    ),
    "manifest-container-port-wrong": (
        "deploy/kubernetes/deployment.yaml",
        r"(containerPort: )\d+",
        r"\g<1>9000",
        "containerPort 'http' is 9000",
    ),
    "manifest-unknown-setting": (
        "deploy/kubernetes/kustomization.yaml",
        r"APP_LOG_JSON=",
        "APP_JSON_LOGS=",
        "APP_JSON_LOGS",
    ),
    "manifest-setting-of-wrong-type": (
        "deploy/kubernetes/kustomization.yaml",
        r"APP_MAX_BATCH_SIZE=\d+",
        "APP_MAX_BATCH_SIZE=1k",
        "APP_MAX_BATCH_SIZE=1k",
    ),
    "manifest-several-workers": (
        "deploy/kubernetes/deployment.yaml",
        r'(name: APP_WORKERS\s+value: )"1"',
        r'\1"4"',
        "APP_WORKERS",
    ),
    "kserve-readiness-path-wrong": (
        str(INFERENCE_SERVICE),
        r"(readinessProbe:\s+httpGet:\s+path: )\S+",
        r"\1/healthz",
        "InferenceService: readinessProbe asks /healthz",
    ),
    "kserve-container-port-wrong": (
        str(INFERENCE_SERVICE),
        r"(containerPort: )\d+",
        r"\g<1>9000",
        "InferenceService: containerPort 'http' is 9000",
    ),
    "kserve-setting-differs": (
        str(INFERENCE_SERVICE),
        r'(name: APP_MAX_BATCH_SIZE\s+value: )"1000"',
        r'\1"10"',
        "InferenceService: the settings",
    ),
    "kserve-memory-differs": (
        str(INFERENCE_SERVICE),
        r"(limits:\s+cpu: \S+\s+memory: )256Mi",
        r"\g<1>1Gi",
        "the container's resources differ",
    ),
    "kserve-runs-as-root": (
        str(INFERENCE_SERVICE),
        r"runAsUser: \d+",
        "runAsUser: 0",
        "InferenceService: runAsUser 0",
    ),
    "kserve-scrape-port-wrong": (
        str(INFERENCE_SERVICE),
        r'prometheus.io/port: "\d+"',
        'prometheus.io/port: "9090"',
        "InferenceService: scrape annotations",
    ),
    "kserve-scales-differently": (
        str(INFERENCE_SERVICE),
        r"maxReplicas: \d+",
        "maxReplicas: 3",
        "maxReplicas is 3",
    ),
    "kserve-image-differs": (
        str(INFERENCE_SERVICE),
        r"(image: \S+):\S+",
        r"\1:latest",
        "is not the base's",
    ),
    "manifest-grace-too-short": (
        "deploy/kubernetes/deployment.yaml",
        r"(terminationGracePeriodSeconds: )\d+",
        r"\g<1>20",
        "terminationGracePeriodSeconds 20",
    ),
}


@pytest.mark.parametrize(
    ("relative", "pattern", "replacement", "reported"),
    list(DRIFTS.values()),
    ids=list(DRIFTS),
)
def test_agreement_check_reports_a_drift(
    renders: dict[bool, BakedProject],
    tmp_path: Path,
    relative: str,
    pattern: str,
    replacement: str,
    reported: str,
) -> None:
    render = copy_of(renders[True], tmp_path)
    path = render / relative
    text, count = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} matched {count} times in {relative}"
    path.write_text(text)

    problems = agreement_problems(render)

    assert any(reported in problem for problem in problems), problems


def test_agreement_check_reports_scrape_annotations_without_metrics(
    renders: dict[bool, BakedProject], tmp_path: Path
) -> None:
    render = copy_of(renders[True], tmp_path)
    (render / "app/metrics.py").unlink()

    problems = agreement_problems(render)

    assert any("the app serves no metrics" in problem for problem in problems), problems


# --- the rest of the base -----------------------------------------------------


def test_manifests_refer_to_one_another(project: BakedProject) -> None:
    objects = read_objects(project.path)
    deployment = objects["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        deployment["metadata"]["name"],
    )
    container = the_container(objects)
    port_names = {port["name"] for port in container["ports"]}
    assert [p["targetPort"] for p in objects["Service"]["spec"]["ports"]] == [PORT_NAME]
    assert PORT_NAME in port_names
    assert container["envFrom"] == [
        {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}}
    ]
    images = read_kustomization(project.path)["images"]
    assert [image["name"] for image in images] == [container["image"]]


def test_autoscaler_scales_on_cpu_from_at_least_two_pods(project: BakedProject) -> None:
    objects = read_objects(project.path)
    spec = objects["HorizontalPodAutoscaler"]["spec"]
    assert [(m["type"], m["resource"]["name"]) for m in spec["metrics"]] == [
        ("Resource", "cpu")
    ]
    assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
    # The autoscaler owns the count; a replicas field would reset it on each apply.
    assert "replicas" not in objects["Deployment"]["spec"]
    assert (
        objects["PodDisruptionBudget"]["spec"]["maxUnavailable"] < spec["minReplicas"]
    )


def _quantity(value: str | int) -> float:
    """A Kubernetes quantity such as ``500m``, ``1`` or ``128Mi`` as a number."""
    found = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi)?", str(value))
    assert found, f"unexpected quantity {value!r}"
    scale = {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return float(found.group(1)) * scale[found.group(2)]


def test_container_requests_and_limits_cpu_and_memory(project: BakedProject) -> None:
    resources = the_container(read_objects(project.path))["resources"]
    for resource in ("cpu", "memory"):
        request = _quantity(resources["requests"][resource])
        assert 0 < request <= _quantity(resources["limits"][resource]), resource


def test_pod_runs_unprivileged_on_a_read_only_root(project: BakedProject) -> None:
    objects = read_objects(project.path)
    spec, container = pod_spec(objects), the_container(objects)
    security = {**spec["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] is True
    assert isinstance(security["runAsUser"], int)
    assert security["runAsUser"] > 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108


# --- the render ---------------------------------------------------------------


def deploy_files(project: BakedProject) -> list[str]:
    return [name for name in project.files() if name.startswith("deploy/")]


def test_manifests_render_as_tidy_yaml(project: BakedProject) -> None:
    assert deploy_files(project) == sorted(
        f"{MANIFESTS.as_posix()}/{name}"
        for name in (
            "deployment.yaml",
            "hpa.yaml",
            "kserve/inferenceservice.yaml",
            KUSTOMIZATION,
            "pdb.yaml",
            "service.yaml",
        )
    )
    for relative in deploy_files(project):
        text = project.read(relative)
        lines = text.split("\n")
        assert text.endswith("\n"), relative
        assert not text.endswith("\n\n"), relative
        assert lines[0].strip(), relative
        assert not [line for line in lines if line != line.rstrip()], relative
        assert "\n\n\n" not in text, relative
        assert "\t" not in text, relative
        assert not [marker for marker in RESIDUE if marker in text], relative


def test_metrics_on_adds_scrape_annotations(renders: dict[bool, BakedProject]) -> None:
    pod = read_objects(renders[True].path)["Deployment"]["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_metrics_off_leaves_no_mention_of_metrics(
    renders: dict[bool, BakedProject],
) -> None:
    project = renders[False]
    found = [
        f"{relative}: {line.strip()}"
        for relative in project.text_files()
        for line in project.read(relative).splitlines()
        if METRICS_WORDS.search(line)
    ]
    # The one exception is a field name of the autoscaling/v2 API itself.
    assert found == [f"{MANIFESTS.as_posix()}/hpa.yaml: metrics:"]
    pod = read_objects(project.path)["Deployment"]["spec"]["template"]
    assert "annotations" not in pod["metadata"]


def test_manifests_are_named_after_the_slug(output_dir: Path) -> None:
    project = bake(output_dir, include_kubernetes=True, project_slug="fraud-model-2")
    objects = read_objects(project.path)
    for kind, document in objects.items():
        assert document["metadata"]["name"] == "fraud-model-2", kind
        assert DNS_LABEL.fullmatch(document["metadata"]["name"]), kind
    pod = objects["Deployment"]["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/name": "fraud-model-2"}
    assert DNS_LABEL.fullmatch(the_container(objects)["name"])


def test_free_text_answers_stay_out_of_the_manifests(output_dir: Path) -> None:
    project = bake(output_dir, include_kubernetes=True, **HOSTILE)
    for relative in deploy_files(project):
        text = project.read(relative)
        for answer in HOSTILE.values():
            assert answer not in text, relative
        assert list(yaml.safe_load_all(text)), relative
    assert agreement_problems(project.path) == []


@pytest.mark.parametrize(
    "version",
    ["0.1.0", "1.0.0rc1", "v2.0", "1!2.0.post3.dev4+ubuntu.7"],
    ids=["release", "pre-release", "v-prefix", "epoch-and-local"],
)
def test_image_tag_is_a_valid_docker_tag(output_dir: Path, version: str) -> None:
    project = bake(output_dir, include_kubernetes=True, version=version)
    tag = read_kustomization(project.path)["images"][0]["newTag"]
    assert isinstance(tag, str)
    assert DOCKER_TAG.fullmatch(tag), tag
