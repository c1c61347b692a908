"""Every supported combination of options renders clean and passes its own tests.

The combinations come from cookiecutter.json itself. Those the pre-gen hook
refuses are pruned, and each is checked to be refused. Generated test suites run
once per distinct generated code: combinations whose Python files and
dependencies are byte-identical share one run in one prepared environment.
"""

import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException

import local_extensions as rules
from tests.harness import interpreter, template_residue
from toolkit.render import DEFAULTS, BakedProject, bake

CHOICES = {
    key: [True, False] if isinstance(value, bool) else value
    for key, value in DEFAULTS.items()
    if not key.startswith("_") and isinstance(value, bool | list)
}
PYTHONS = DEFAULTS["python_version"]
TASKS = DEFAULTS["model_task"]


def all_on(answers: dict[str, Any]) -> str:
    """The label of the render with every option on, and these answers' Python
    and task."""
    chosen = {"license": "MIT"} | {
        key: answers[key] for key in ("model_task", "python_version")
    }
    return label({key: chosen.get(key, True) for key, value in CHOICES.items()})


def is_refused(answers: dict[str, Any]) -> bool:
    try:
        rules.validate_options(answers)
    except rules.InvalidAnswerError:
        return True
    return False


def label(answers: dict[str, Any]) -> str:
    return "-".join(
        f"{key.removeprefix('include_')}={value}" for key, value in answers.items()
    )


ALL = [
    dict(zip(CHOICES, values, strict=True))
    for values in itertools.product(*CHOICES.values())
]
SUPPORTED = [answers for answers in ALL if not is_refused(answers)]
REFUSED = [answers for answers in ALL if is_refused(answers)]


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BakedProject]:
    root = tmp_path_factory.mktemp("matrix")
    return {
        label(answers): bake(root / str(index), **answers)
        for index, answers in enumerate(SUPPORTED)
    }


@pytest.fixture(scope="module")
def ruff_findings(renders: dict[str, BakedProject]) -> dict[Path, list[str]]:
    """Ruff over every render in two runs, each file checked by its own config."""
    root = next(iter(renders.values())).path.parent.parent
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run(
        [*ruff, "check", "--no-cache", "--output-format", "json", root],
        capture_output=True,
        text=True,
        check=False,
    )
    fmt = subprocess.run(
        [*ruff, "format", "--no-cache", "--check", root],
        capture_output=True,
        text=True,
        check=False,
    )
    findings: dict[Path, list[str]] = {}
    for item in json.loads(check.stdout or "[]"):
        findings.setdefault(Path(item["filename"]), []).append(
            f"{item['code']} {item['message']}"
        )
    for line in fmt.stdout.splitlines():
        if line.startswith("Would reformat: "):
            path = Path(line.removeprefix("Would reformat: "))
            findings.setdefault(
                root / path if not path.is_absolute() else path, []
            ).append("not formatted")
    return findings


def expected_files(every_file: list[str], answers: dict[str, Any]) -> list[str]:
    pruned = rules.pruned_paths(answers)
    return [
        file
        for file in every_file
        if not any(file == p or file.startswith(f"{p}/") for p in pruned)
    ]


@pytest.mark.parametrize("answers", REFUSED, ids=label)
def test_refused_combination_is_refused_leaving_nothing(
    output_dir: Path, answers: dict[str, Any]
) -> None:
    with pytest.raises(FailedHookException):
        bake(output_dir, **answers)
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize("answers", SUPPORTED, ids=label)
def test_combination_renders_exactly_its_files_clean(
    renders: dict[str, BakedProject],
    ruff_findings: dict[Path, list[str]],
    answers: dict[str, Any],
) -> None:
    project = renders[label(answers)]
    assert project.files() == expected_files(renders[all_on(answers)].files(), answers)
    for relative in project.text_files():
        text = project.read(relative)
        assert not template_residue(text), relative
        if relative.endswith(".py"):
            compile(text, relative, "exec")
    problems = {
        str(path.relative_to(project.path)): found
        for path, found in ruff_findings.items()
        if path.is_relative_to(project.path)
    }
    assert problems == {}


# What include_kubernetes adds to a suite: its tests, and the dev tools they need.
# They only add (the app is the same), so a group's run takes a render that has
# them, and a render without them runs a subset of the same suite.
KUBERNETES_TESTS = "tests/test_deploy.py"
KUBERNETES_DEV = ("pyyaml", "types-pyyaml")


def code_identity(project: BakedProject) -> str:
    """What decides a generated suite's result: its Python code and dependencies,
    less what the Kubernetes option only adds."""
    digest = hashlib.sha256()
    for relative in project.files():
        if (
            relative.endswith((".py", ".json", ".onnx"))
            and relative != KUBERNETES_TESTS
        ):
            digest.update(relative.encode() + (project.path / relative).read_bytes())
    pyproject = project.pyproject()
    digest.update(json.dumps(pyproject["project"]["dependencies"]).encode())
    dev = [
        r
        for r in pyproject["dependency-groups"]["dev"]
        if not r.startswith(KUBERNETES_DEV)
    ]
    digest.update(json.dumps(dev).encode())
    return digest.hexdigest()


_environments: dict[str, Path] = {}


def prepared_environment(version: str, tmp: Path, reference: BakedProject) -> Path:
    """One virtualenv per Python version, with every option's dependencies and
    the train group, so that the parity and retraining tests run too."""
    if version not in _environments:
        env_dir = tmp / f"venv-{version}"
        subprocess.run([interpreter(version), "-m", "venv", env_dir], check=True)
        pyproject = reference.pyproject()
        groups = pyproject["dependency-groups"]
        requirements = (
            pyproject["project"]["dependencies"] + groups["dev"] + groups["train"]
        )
        reference.run(
            env_dir / "bin" / "python", "-m", "pip", "install", "-q", *requirements
        )
        _environments[version] = env_dir / "bin" / "python"
    return _environments[version]


def suite_runs() -> list[tuple[str, str, str, bool]]:
    """(interpreter, model_task, python_version answer, include_metrics) for each
    distinct code."""
    runs = [
        (version, task, version, metrics)
        for task in TASKS
        for version in PYTHONS
        for metrics in (True, False)
    ]
    # The default answer (the lowest version) must also pass on every newer Python.
    runs += [
        (version, task, PYTHONS[0], True) for task in TASKS for version in PYTHONS[1:]
    ]
    return runs


@pytest.mark.parametrize(
    ("python", "task", "python_version", "metrics"),
    suite_runs(),
    ids=[f"python{p}-{t}-answer{v}-metrics={m}" for p, t, v, m in suite_runs()],
)
def test_generated_suite_passes_for_each_distinct_code(
    renders: dict[str, BakedProject],
    tmp_path_factory: pytest.TempPathFactory,
    python: str,
    task: str,
    python_version: str,
    metrics: bool,
) -> None:
    group = [
        project
        for key, project in renders.items()
        if f"model_task={task}-" in key
        and f"python_version={python_version}-" in key
        and f"metrics={metrics}-" in key
    ]
    identities = {code_identity(project) for project in group}
    assert len(identities) == 1, "combinations assumed identical differ in code"
    reference = renders[all_on({"model_task": task, "python_version": python_version})]
    executable = prepared_environment(python, tmp_path_factory.getbasetemp(), reference)
    # The render with the Kubernetes tests, when the group has one: a superset.
    with_deploy = [member for member in group if member.has_file(KUBERNETES_TESTS)]
    project = (with_deploy or group)[0]
    result = project.run(
        executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    summary = result.stdout.strip().splitlines()[-1]
    version = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"{version}: {len(group)} combinations share this run: {summary}")
    assert " passed" in summary, result.stdout
    assert "failed" not in summary, result.stdout
    assert "skipped" not in summary, result.stdout  # the train group's tests ran
