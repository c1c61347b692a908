"""The Kubernetes manifests: valid for the API server (kubernetes-validate, and
KServe's and KEDA's own CRD schemas), and tidy.

That they agree with the service they deploy is the generated project's own
tests/test_deploy.py, which the users keep as they change their service;
tests/end_to_end/test_deploy_agreement.py checks that it catches each drift.
"""

from __future__ import annotations

import functools
import lzma
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.harness import DATA, HOSTILE, MENTIONS, RESIDUE
from toolkit.render import BakedProject, bake

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
# The example of the Secret the pods read their API keys from, outside the base.
KEY_SECRET_EXAMPLE = MANIFESTS / "secrets" / "api-keys.example.yaml"
KEY_FILE_VARIABLE = "APP_API_KEYS_FILE"
# With metrics: the kustomize component that scales on requests in flight.
KEDA_COMPONENT = MANIFESTS / "keda"
SCALED_OBJECT = KEDA_COMPONENT / "scaledobject.yaml"
# KEDA's own CustomResourceDefinition (see tests/data/README.md).
KEDA_CRD = DATA / "keda/keda.sh_scaledobjects.yaml"
BASE_KINDS = ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
# The container port's name, by which the Service and the probes refer to it.
PORT_NAME = "http"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
METRICS_WORDS = re.compile(MENTIONS["include_metrics"], re.IGNORECASE)


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
    return crd_schema(crd, "InferenceService", "v1beta1")


@functools.cache
def scaled_object_schema() -> dict[str, Any]:
    """The v1alpha1 schema of KEDA's ScaledObject CRD, strict likewise."""
    crd = yaml.safe_load(KEDA_CRD.read_text())
    return crd_schema(crd, "ScaledObject", "v1alpha1")


def crd_schema(crd: dict[str, Any], kind: str, version: str) -> dict[str, Any]:
    assert crd["spec"]["names"]["kind"] == kind
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return _closed(served["schema"]["openAPIV3Schema"])


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
    return crd_schema_errors(inference_service_schema(), document)


def crd_schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(schema)
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


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` builds from ``directory``; fails with
    its error if it cannot."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_kustomize_builds_the_base_into_valid_objects(project: BakedProject) -> None:
    objects = {doc["kind"]: doc for doc in kustomize(project.path / MANIFESTS)}
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
    # The rules for the Prometheus Operator come with include_metrics.
    with_metrics = project.has_file("app/metrics.py")
    assert deploy_files(project) == sorted(
        f"{MANIFESTS.as_posix()}/{name}"
        for name in (
            "deployment.yaml",
            "hpa.yaml",
            "kserve/inferenceservice.yaml",
            KUSTOMIZATION,
            "pdb.yaml",
            "secrets/api-keys.example.yaml",
            "service.yaml",
            *(["monitoring/prometheusrule.yaml"] if with_metrics else []),
            *(
                ["keda/kustomization.yaml", "keda/scaledobject.yaml"]
                if with_metrics
                else []
            ),
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
        # The deploy tests check, either way, that the pods are scraped exactly
        # when the app serves metrics.
        if relative != "tests/test_deploy.py"
        for line in project.read(relative).splitlines()
        if METRICS_WORDS.search(line)
    ]
    # The other exception is a field name of the autoscaling/v2 API itself.
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


# --- API keys -----------------------------------------------------------------


def read_key_secret_example(project: Path) -> dict[str, Any]:
    [document] = load_documents(project / KEY_SECRET_EXAMPLE)
    return document


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
def test_example_key_secret_is_valid_for_the_kubernetes_api(
    project: BakedProject, kubernetes_version: str
) -> None:
    secret = read_key_secret_example(project.path)
    assert secret["kind"] == "Secret"
    assert schema_errors(secret, kubernetes_version) == []


def test_pods_read_api_keys_from_the_required_secret(project: BakedProject) -> None:
    secret = read_key_secret_example(project.path)
    objects = read_objects(project.path)
    inference_service = read_inference_service(project.path)
    assert inference_service is not None
    predictor = inference_service["spec"]["predictor"]
    pods = {
        "deployment": (pod_spec(objects), the_container(objects)),
        "kserve": (predictor, predictor["containers"][0]),
    }
    for where, (spec, container) in pods.items():
        environment = {v["name"]: v.get("value") for v in container["env"]}
        key_file = Path(environment[KEY_FILE_VARIABLE])
        [mount] = [
            mount
            for mount in container["volumeMounts"]
            if Path(mount["mountPath"]) == key_file.parent
        ]
        assert "subPath" not in mount, where
        assert mount["readOnly"] is True, where
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert volumes[mount["name"]]["secret"] == {
            "secretName": secret["metadata"]["name"]
        }, where
        assert key_file.name in secret["stringData"], where
    # The base leaves the Secret to the cluster: applying it must not reset keys.
    assert "Secret" not in objects


def readme_block(project: BakedProject, after: str, language: str) -> str:
    """The first ``language`` code block of the README after the text ``after``."""
    text = project.read("README.md")
    found = re.search(rf"```{language}\n(.*?)```", text[text.index(after) :], re.DOTALL)
    assert found, f"no {language} block after {after!r}"
    return found.group(1)


def test_readme_creates_the_secret_the_pods_mount(project: BakedProject) -> None:
    secret = read_key_secret_example(project.path)
    [entry] = secret["stringData"]
    create = f"kubectl create secret generic {secret['metadata']['name']}"
    text = project.read("README.md")
    assert f"{create} --from-literal={entry}=" in text
    assert f"{create} --from-file={entry}=" in text


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_readme_patch_runs_the_base_without_keys(
    project: BakedProject, tmp_path: Path
) -> None:
    patch = yaml.safe_load(readme_block(project, "To run without keys", "yaml"))
    base = os.path.relpath(project.path / MANIFESTS, tmp_path)
    (tmp_path / KUSTOMIZATION).write_text(
        yaml.safe_dump({"resources": [base], **patch})
    )
    objects = {doc["kind"]: doc for doc in kustomize(tmp_path)}
    spec, container = pod_spec(objects), the_container(objects)
    assert KEY_FILE_VARIABLE not in {variable["name"] for variable in container["env"]}
    assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"]  # noqa: S108
    assert [volume["name"] for volume in spec["volumes"]] == ["tmp"]


# --- autoscaling on requests in flight (KEDA) ---------------------------------


def read_scaled_object(project: Path) -> dict[str, Any]:
    [document] = load_documents(project / SCALED_OBJECT)
    return document


def test_scaled_object_is_valid_for_keda(renders: dict[bool, BakedProject]) -> None:
    scaled_object = read_scaled_object(renders[True].path)
    assert scaled_object["apiVersion"] == "keda.sh/v1alpha1"
    assert crd_schema_errors(scaled_object_schema(), scaled_object) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("maxReplicas", 10),
        ("minReplicaCount", -1),
        ("triggers", [{"type": "prometheus", "metadata": {"threshold": 16}}]),
    ],
    ids=["misspelt", "negative", "number-for-string"],
)
def test_keda_schema_rejects_a_wrong_field(
    renders: dict[bool, BakedProject], field: str, value: Any
) -> None:
    scaled_object = read_scaled_object(renders[True].path)
    scaled_object["spec"][field] = value
    errors = crd_schema_errors(scaled_object_schema(), scaled_object)
    assert errors != []
    assert field in " ".join(errors)


def test_scaled_object_scales_on_requests_in_flight_and_cpu(
    renders: dict[bool, BakedProject],
) -> None:
    spec = read_scaled_object(renders[True].path)["spec"]
    triggers = {trigger["type"]: trigger for trigger in spec["triggers"]}
    assert sorted(triggers) == ["cpu", "prometheus"]
    assert "http_requests_in_flight{" in triggers["prometheus"]["metadata"]["query"]
    assert triggers["prometheus"]["metricType"] == "AverageValue"
    assert triggers["cpu"]["metricType"] == "Utilization"
    assert spec["minReplicaCount"] >= 2


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_keda_component_replaces_the_autoscaler(
    renders: dict[bool, BakedProject], tmp_path: Path
) -> None:
    project = renders[True].path
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(project / MANIFESTS, overlay)
    component = os.path.relpath(project / KEDA_COMPONENT, overlay)
    (overlay / KUSTOMIZATION).write_text(
        yaml.safe_dump({"resources": [base], "components": [component]})
    )
    objects = {doc["kind"]: doc for doc in kustomize(overlay)}
    expected = {*BASE_KINDS, "ConfigMap", "ScaledObject"} - {"HorizontalPodAutoscaler"}
    assert sorted(objects) == sorted(expected)
    target = objects["ScaledObject"]["spec"]["scaleTargetRef"]
    assert target["name"] == objects["Deployment"]["metadata"]["name"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
def test_readme_adds_the_keda_component_to_the_base(
    renders: dict[bool, BakedProject], tmp_path: Path
) -> None:
    project = renders[True]
    commands = readme_block(project, "Scale on the requests in flight", "bash")
    [add] = [line for line in commands.splitlines() if KUSTOMIZATION in line]
    copy = copy_of(project, tmp_path)
    subprocess.run(["bash", "-c", add], cwd=copy, check=True, timeout=60)
    kinds = sorted(doc["kind"] for doc in kustomize(copy / MANIFESTS))
    assert "ScaledObject" in kinds
    assert "HorizontalPodAutoscaler" not in kinds
