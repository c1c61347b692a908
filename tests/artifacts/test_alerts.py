"""The alerting and recording rules of include_metrics: checked and unit-tested
by promtool, every alert tested firing and resolving, and the PrometheusRule of
include_kubernetes holding the same rules, valid for the Prometheus Operator's
own CRD schema.

That the rules read what the service really exposes is
tests/end_to_end/test_alerts.py, with a real Prometheus scraping a real server.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.artifacts.test_kubernetes import _closed
from tests.harness import DATA
from tests.prometheus import (
    PROMETHEUS_RULE,
    RULES,
    RULES_TESTS,
    promtool,
    read_rules,
    rules_of,
)
from toolkit.render import BakedProject, bake

# The Prometheus Operator's own CustomResourceDefinition (see tests/data/README.md).
PROMETHEUS_RULE_CRD = (
    DATA / "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml"
)


@pytest.fixture(scope="module")
def with_kubernetes(tmp_path_factory: pytest.TempPathFactory) -> BakedProject:
    return bake(tmp_path_factory.mktemp("alerts"), include_kubernetes=True)


def read_prometheus_rule(project: BakedProject) -> dict[str, Any]:
    [document] = [
        doc for doc in yaml.safe_load_all(project.read(PROMETHEUS_RULE)) if doc
    ]
    return document


# --- promtool -----------------------------------------------------------------


def test_promtool_finds_the_rules_valid(default_project: BakedProject) -> None:
    checked = promtool("check", "rules", RULES, cwd=default_project.path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = len(rules_of(read_rules(default_project), "record")) + len(
        rules_of(read_rules(default_project), "alert")
    )
    assert f"SUCCESS: {count} rules found" in checked.stdout


def test_promtool_unit_tests_of_the_rules_pass(default_project: BakedProject) -> None:
    tested = promtool("test", "rules", RULES_TESTS, cwd=default_project.path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_promtool_unit_tests_fail_on_a_broken_rule(
    default_project: BakedProject, tmp_path: Path
) -> None:
    project = Path(shutil.copytree(default_project.path, tmp_path / "project"))
    rules = project / RULES
    rules.write_text(rules.read_text().replace("> 0.05", "> 0.5"))
    tested = promtool("test", "rules", RULES_TESTS, cwd=project)
    assert tested.returncode != 0, tested.stdout
    assert "ModelServiceHighErrorRatio" in tested.stdout + tested.stderr


def alert_tests(project: BakedProject) -> dict[str, list[tuple[str, bool]]]:
    """Each alert's unit tests: when, and whether it is expected to fire."""
    tests: dict[str, list[tuple[str, bool]]] = {}
    for case in yaml.safe_load(project.read(RULES_TESTS))["tests"]:
        for check in case.get("alert_rule_test", []):
            fires = bool(check.get("exp_alerts"))
            tests.setdefault(check["alertname"], []).append((check["eval_time"], fires))
    return tests


def minutes(duration: str) -> int:
    assert duration.endswith("m"), duration
    return int(duration.removesuffix("m"))


def test_every_alert_is_tested_firing_then_resolved(
    default_project: BakedProject,
) -> None:
    alerts = [rule["alert"] for rule in rules_of(read_rules(default_project), "alert")]
    tests = alert_tests(default_project)
    assert sorted(tests) == sorted(alerts)
    for alert in alerts:
        timeline = sorted(tests[alert], key=lambda check: minutes(check[0]))
        firing = [index for index, (_, fires) in enumerate(timeline) if fires]
        assert firing, f"{alert} is never tested firing"
        assert not timeline[0][1], f"{alert} is not tested quiet before it fires"
        assert not timeline[-1][1], f"{alert} is not tested resolved after it fires"


def test_every_alert_says_how_bad_and_what_happened(
    default_project: BakedProject,
) -> None:
    for rule in rules_of(read_rules(default_project), "alert"):
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["for"], rule["alert"]


def test_rules_read_the_scrape_job_named_after_the_slug(output_dir: Path) -> None:
    project = bake(output_dir, project_slug="fraud-model-2")
    expressions = [
        rule["expr"]
        for kind in ("record", "alert")
        for rule in rules_of(read_rules(project), kind)
        if "job=" in rule["expr"]
    ]
    assert expressions
    for expr in expressions:
        assert 'job="fraud-model-2"' in expr, expr
    assert promtool("check", "rules", RULES, cwd=project.path).returncode == 0


# --- the PrometheusRule of include_kubernetes -----------------------------------


def test_prometheus_rule_holds_exactly_the_rules_of_the_rules_file(
    with_kubernetes: BakedProject,
) -> None:
    prometheus_rule = read_prometheus_rule(with_kubernetes)
    assert prometheus_rule["spec"] == read_rules(with_kubernetes)


@functools.cache
def prometheus_rule_schema() -> dict[str, Any]:
    """The v1 schema of the operator's CRD, strict about unknown fields."""
    crd = yaml.safe_load(PROMETHEUS_RULE_CRD.read_text())
    assert crd["spec"]["names"]["kind"] == "PrometheusRule"
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return _closed(version["schema"]["openAPIV3Schema"])


def prometheus_rule_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(prometheus_rule_schema())
    return [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_prometheus_rule_is_valid_for_the_prometheus_operator(
    with_kubernetes: BakedProject,
) -> None:
    prometheus_rule = read_prometheus_rule(with_kubernetes)
    assert prometheus_rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert prometheus_rule["kind"] == "PrometheusRule"
    assert prometheus_rule["metadata"]["name"] == "iris-classifier"
    assert prometheus_rule_errors(prometheus_rule) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("fr", "5m"), ("for", "five minutes"), ("labels", {"severity": 3})],
    ids=["misspelt", "bad-duration", "non-string-label"],
)
def test_operator_schema_rejects_a_wrong_alert_field(
    with_kubernetes: BakedProject, field: str, value: Any
) -> None:
    prometheus_rule = read_prometheus_rule(with_kubernetes)
    alert = prometheus_rule["spec"]["groups"][-1]["rules"][0]
    alert[field] = value
    errors = prometheus_rule_errors(prometheus_rule)
    assert errors != []
    assert field in " ".join(errors)


def test_prometheus_rule_stays_out_of_the_kustomize_base(
    with_kubernetes: BakedProject,
) -> None:
    # The base must apply on clusters without the operator's CRDs.
    kustomization = yaml.safe_load(
        with_kubernetes.read("deploy/kubernetes/kustomization.yaml")
    )
    assert not [r for r in kustomization["resources"] if "monitoring" in r]
