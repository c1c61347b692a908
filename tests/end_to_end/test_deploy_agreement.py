"""The generated tests/test_deploy.py passes on a render with Kubernetes, and
fails on each way its manifests can drift from the service they deploy."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from toolkit.render import BakedProject, bake, clean_env, poetry_install

# (file, pattern, replacement, the generated test that must fail, and in which
# pod): edits to a render that its manifests do not follow.
DRIFTS = {
    "app-port-default-9000": (
        "app/config.py",
        r"(port: int = Field\(default=)\d+",
        r"\g<1>9000",
        "test_container_port_is_where_the_service_listens[deployment",
    ),
    "app-ready-route-moved": (
        "app/main.py",
        r'"(/health/ready)"',
        r'"\1/now"',
        "test_probe_asks_the_health_route_on_the_named_port[deployment",
    ),
    "app-live-route-moved": (
        "app/main.py",
        r'"(/health/live)"',
        r'"\1/now"',
        "test_probe_asks_the_health_route_on_the_named_port[deployment",
    ),
    "app-metrics-route-moved": (
        "app/metrics.py",
        r'add_api_route\("/metrics"',
        'add_api_route("/stats"',
        "test_scrape_annotations_point_to_the_metrics_route[deployment",
    ),
    "app-drains-longer": (
        "app/config.py",
        r"(timeout_graceful_shutdown: int = Field\(default=)\d+",
        r"\g<1>60",
        "test_grace_period_covers_the_pre_stop_pause_and_the_drain[deployment",
    ),
    "image-user-changed": (
        "Dockerfile",
        r"^USER \S+$",
        "USER 20002:20002",
        "test_pod_runs_as_the_images_user[deployment",
    ),
    "image-exposes-another-port": (
        "Dockerfile",
        r"^EXPOSE \d+$",
        "EXPOSE 9000",
        "test_container_port_is_where_the_service_listens[deployment",
    ),
    "manifest-probes-swapped": (
        "deploy/kubernetes/deployment.yaml",
        r"(readinessProbe:\s+httpGet:\s+path: )\S+",
        r"\1/health/live",
        "test_probe_asks_the_health_route_on_the_named_port[deployment",
    ),
    "manifest-probe-port-numeric": (
        "deploy/kubernetes/deployment.yaml",
        r"(livenessProbe:\s+httpGet:\s+path: \S+\s+port: )\S+",
        r"\g<1>8080",
        "test_probe_asks_the_health_route_on_the_named_port[deployment",
    ),
    "manifest-unknown-setting": (
        "deploy/kubernetes/kustomization.yaml",
        r"APP_LOG_JSON=",
        "APP_JSON_LOGS=",
        "test_every_setting_is_a_valid_field_of_settings[deployment",
    ),
    "manifest-setting-of-wrong-type": (
        "deploy/kubernetes/kustomization.yaml",
        r"APP_MAX_ROWS_PER_REQUEST=\d+",
        "APP_MAX_ROWS_PER_REQUEST=1k",
        "test_every_setting_is_a_valid_field_of_settings[deployment",
    ),
    "manifest-several-workers": (
        "deploy/kubernetes/deployment.yaml",
        r'(name: APP_WORKERS\s+value: )"1"',
        r'\1"4"',
        "test_pod_listens_everywhere_with_one_worker[deployment",
    ),
    "manifest-grace-too-short": (
        "deploy/kubernetes/deployment.yaml",
        r"(terminationGracePeriodSeconds: )\d+",
        r"\g<1>20",
        "test_grace_period_covers_the_pre_stop_pause_and_the_drain[deployment",
    ),
    "kserve-container-port-wrong": (
        "deploy/kubernetes/kserve/inferenceservice.yaml",
        r"(containerPort: )\d+",
        r"\g<1>9000",
        "test_container_port_is_where_the_service_listens[kserve",
    ),
    "kserve-setting-differs": (
        "deploy/kubernetes/kserve/inferenceservice.yaml",
        r'(name: APP_MAX_ROWS_PER_REQUEST\s+value: )"1000"',
        r'\1"10"',
        "test_inference_service_runs_as_the_deployment_does",
    ),
    "kserve-memory-differs": (
        "deploy/kubernetes/kserve/inferenceservice.yaml",
        r"(limits:\s+cpu: \S+\s+memory: )256Mi",
        r"\g<1>1Gi",
        "test_inference_service_runs_as_the_deployment_does",
    ),
    "kserve-scrape-port-wrong": (
        "deploy/kubernetes/kserve/inferenceservice.yaml",
        r'prometheus.io/port: "\d+"',
        'prometheus.io/port: "9090"',
        "test_scrape_annotations_point_to_the_metrics_route[kserve",
    ),
    "kserve-scales-differently": (
        "deploy/kubernetes/kserve/inferenceservice.yaml",
        r"maxReplicas: \d+",
        "maxReplicas: 3",
        "test_inference_service_scales_as_the_autoscaler_does",
    ),
    "manifest-key-file-outside-the-mount": (
        "deploy/kubernetes/deployment.yaml",
        r"(name: APP_API_KEYS_FILE\s+value: )\S+",
        r"\1/run/secrets/keys",
        "test_key_file_is_in_the_mounted_secret[deployment",
    ),
    "manifest-key-file-variable-misspelt": (
        "deploy/kubernetes/deployment.yaml",
        r"APP_API_KEYS_FILE",
        "APP_API_KEY_FILE",
        "test_every_setting_is_a_valid_field_of_settings[deployment",
    ),
    "manifest-key-mount-by-sub-path": (
        "deploy/kubernetes/deployment.yaml",
        r"^( +)(mountPath: /run/secrets/api-keys)$",
        r"\1\2\n\1subPath: keys",
        "test_key_file_is_in_the_mounted_secret[deployment",
    ),
    "manifest-key-secret-optional": (
        "deploy/kubernetes/deployment.yaml",
        r"^( +)(secretName: \S+-api-keys\S*)$",
        r"\1\2\n\1optional: true",
        "test_key_file_is_in_the_mounted_secret[deployment",
    ),
    "manifest-key-secret-renamed": (
        "deploy/kubernetes/deployment.yaml",
        r"secretName: \S+-api-keys\S*",
        "secretName: api-keys",
        "test_key_file_is_in_the_mounted_secret[deployment",
    ),
    "example-secret-holds-a-usable-key": (
        "deploy/kubernetes/secrets/api-keys.example.yaml",
        r"REPLACE-ME",
        "correct-horse-battery-staple",
        "test_example_secret_holds_no_usable_key",
    ),
    "kserve-key-secret-differs": (
        "deploy/kubernetes/kserve/inferenceservice.yaml",
        r"secretName: \S+-api-keys\S*",
        "secretName: api-keys",
        "test_inference_service_runs_as_the_deployment_does",
    ),
    "keda-scales-differently": (
        "deploy/kubernetes/keda/scaledobject.yaml",
        r"maxReplicaCount: \d+",
        "maxReplicaCount: 20",
        "test_scaled_object_scales_as_the_autoscaler_does",
    ),
    "keda-cpu-target-differs": (
        "deploy/kubernetes/keda/scaledobject.yaml",
        r'(value: )"\d+"',
        r'\1"90"',
        "test_scaled_object_scales_as_the_autoscaler_does",
    ),
    "keda-asks-for-an-unserved-metric": (
        "deploy/kubernetes/keda/scaledobject.yaml",
        r"http_requests_in_flight\{",
        "http_requests_active{",
        "test_scaled_object_asks_for_metrics_the_service_serves",
    ),
    "keda-asks-for-another-job": (
        "deploy/kubernetes/keda/scaledobject.yaml",
        r'job="[^"]+"',
        'job="kubernetes-pods"',
        "test_scaled_object_asks_for_metrics_the_service_serves",
    ),
    "app-in-flight-gauge-renamed": (
        "app/metrics.py",
        r'"http_requests_in_flight",',
        '"http_requests_active",',
        "test_scaled_object_asks_for_metrics_the_service_serves",
    ),
    "kserve-image-differs": (
        "deploy/kubernetes/kserve/inferenceservice.yaml",
        r"(image: \S+):\S+",
        r"\1:latest",
        "test_inference_service_runs_the_bases_image",
    ),
}


@pytest.fixture(scope="module")
def kubernetes_install(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BakedProject, Path]:
    """A render with Kubernetes, installed with its dev group; its python."""
    project = bake(tmp_path_factory.mktemp("kubernetes"), include_kubernetes=True)
    return project, poetry_install(project) / "python"


def run_test_deploy(python: Path, project: Path) -> str:
    """The generated tests/test_deploy.py's report, run from ``project``."""
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_deploy.py",
        ],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def test_generated_deploy_tests_pass_as_rendered(
    kubernetes_install: tuple[BakedProject, Path],
) -> None:
    project, python = kubernetes_install
    report = run_test_deploy(python, project.path)
    assert report.startswith("exit 0\n"), report
    assert " passed" in report, report


@pytest.mark.parametrize(
    ("relative", "pattern", "replacement", "failing"),
    list(DRIFTS.values()),
    ids=list(DRIFTS),
)
def test_generated_deploy_tests_catch_a_drift(
    kubernetes_install: tuple[BakedProject, Path],
    tmp_path: Path,
    relative: str,
    pattern: str,
    replacement: str,
    failing: str,
) -> None:
    project, python = kubernetes_install
    copy = Path(
        shutil.copytree(
            project.path,
            tmp_path / project.path.name,
            ignore=shutil.ignore_patterns(".venv"),
        )
    )
    path = copy / relative
    text, count = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} matched {count} times in {relative}"
    path.write_text(text)

    report = run_test_deploy(python, copy)

    assert f"FAILED tests/test_deploy.py::{failing}" in report, report
