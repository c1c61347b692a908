"""Every supported combination of options renders clean and passes its own tests.

The combinations come from cookiecutter.json itself. Those the pre-gen hook
refuses are pruned, and each is checked to be refused. Generated test suites run
once per distinct generated code: combinations whose Python files and
dependencies are byte-identical share one run in one prepared environment.
"""

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException

import local_extensions as rules
from tests.harness import DEFAULTS, BakedProject, bake, template_residue

CHOICES = {
    key: [True, False] if isinstance(value, bool) else value
    for key, value in DEFAULTS.items()
    if not key.startswith("_") and isinstance(value, bool | list)
}
PYTHONS = DEFAULTS["python_version"]


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


def expected_files(all_on: list[str], answers: dict[str, Any]) -> list[str]:
    pruned = [
        path
        for option, paths in rules.OPTIONAL_PATHS.items()
        if not answers[option]
        for path in paths
    ]
    if answers["license"] == "Proprietary":
        pruned.append("LICENSE")
    return [
        file
        for file in all_on
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
    all_on = renders[
        label(
            dict.fromkeys(CHOICES, True)
            | {"python_version": answers["python_version"], "license": "MIT"}
        )
    ].files()
    assert project.files() == expected_files(all_on, answers)
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


def code_identity(project: BakedProject) -> str:
    """What decides a generated suite's result: its Python code and dependencies."""
    digest = hashlib.sha256()
    for relative in project.files():
        if relative.endswith((".py", ".json", ".onnx")):
            digest.update(relative.encode() + (project.path / relative).read_bytes())
    pyproject = project.pyproject()
    digest.update(json.dumps(pyproject["project"]["dependencies"]).encode())
    digest.update(json.dumps(pyproject["dependency-groups"]["dev"]).encode())
    return digest.hexdigest()


def interpreter_candidates(version: str) -> list[Path]:
    """Where this version's interpreter may be: pyenv, then the PATH."""
    candidates: list[Path] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        result = subprocess.run(
            [pyenv, "prefix", version], capture_output=True, text=True, check=False
        )
        candidates += [
            Path(prefix.strip()) / "bin" / "python"
            for prefix in result.stdout.split(":")
            if prefix.strip()
        ]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(pyenv_root.glob(f"versions/{version}.*/bin/python"))
    on_path = shutil.which(f"python{version}")  # e.g. from actions/setup-python
    if on_path:
        candidates.append(Path(on_path))
    return candidates


def runs_as(candidate: Path, version: str) -> bool:
    """Whether this file runs as that Python version (a pyenv shim may not)."""
    try:
        result = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.strip() == version


def interpreter(version: str) -> str:
    """This version's interpreter, from pyenv or the PATH; the suite needs them all."""
    for candidate in interpreter_candidates(version):
        if runs_as(candidate, version):
            return str(candidate)
    raise AssertionError(
        f"no Python {version} found: install it with pyenv, or put python{version}"
        " on the PATH"
    )


def fake_executable(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def fake_python(path: Path, version: str, status: int = 0) -> Path:
    """An executable that answers like a Python of this version would."""
    return fake_executable(path, f"echo {version}; exit {status}")


def fake_pyenv(bin_dir: Path, prefix: str) -> None:
    """A pyenv whose ``prefix`` prints this, newline included, as pyenv does."""
    fake_executable(bin_dir / "pyenv", f"printf '%s\\n' '{prefix}'")


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty bin directory as the whole PATH, and an empty home."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    return bin_dir


def test_interpreter_from_pyenv_prefix_outside_home(
    bare_path: Path, tmp_path: Path
) -> None:
    python = fake_python(tmp_path / "opt/pyenv/versions/3.12.1/bin/python", "3.12")
    fake_pyenv(bare_path, str(python.parent.parent))
    assert interpreter("3.12") == str(python)


def test_interpreter_skips_a_shim_that_does_not_run(
    bare_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_python(bare_path / "python3.13", "", status=127)  # a shim, no such version
    python = fake_python(tmp_path / "pyenv/versions/3.13.2/bin/python", "3.13")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    assert interpreter("3.13") == str(python)


def test_interpreter_from_the_path(bare_path: Path) -> None:
    python = fake_python(bare_path / "python3.11", "3.11")
    assert interpreter("3.11") == str(python)


def test_interpreter_missing_says_how_to_install_it(bare_path: Path) -> None:
    fake_python(bare_path / "python3.12", "3.11")  # answers, but as another version
    with pytest.raises(AssertionError, match=r"no Python 3\.12 found: install it"):
        interpreter("3.12")


_environments: dict[str, Path] = {}


def prepared_environment(version: str, tmp: Path, reference: BakedProject) -> Path:
    """One virtualenv per Python version, with every option's dependencies."""
    if version not in _environments:
        env_dir = tmp / f"venv-{version}"
        subprocess.run([interpreter(version), "-m", "venv", env_dir], check=True)
        pyproject = reference.pyproject()
        requirements = (
            pyproject["project"]["dependencies"] + pyproject["dependency-groups"]["dev"]
        )
        reference.run(
            env_dir / "bin" / "python", "-m", "pip", "install", "-q", *requirements
        )
        _environments[version] = env_dir / "bin" / "python"
    return _environments[version]


def suite_runs() -> list[tuple[str, str, bool]]:
    """(interpreter, python_version answer, include_metrics) for each distinct code."""
    runs = [
        (version, version, metrics) for version in PYTHONS for metrics in (True, False)
    ]
    # The default answer (the lowest version) must also pass on every newer Python.
    runs += [(version, PYTHONS[0], True) for version in PYTHONS[1:]]
    return runs


@pytest.mark.parametrize(
    ("python", "python_version", "metrics"),
    suite_runs(),
    ids=[f"python{p}-answer{v}-metrics={m}" for p, v, m in suite_runs()],
)
def test_generated_suite_passes_for_each_distinct_code(
    renders: dict[str, BakedProject],
    tmp_path_factory: pytest.TempPathFactory,
    python: str,
    python_version: str,
    metrics: bool,
) -> None:
    group = [
        project
        for key, project in renders.items()
        if f"python_version={python_version}-" in key and f"metrics={metrics}-" in key
    ]
    identities = {code_identity(project) for project in group}
    assert len(identities) == 1, "combinations assumed identical differ in code"
    reference = renders[
        label(
            dict.fromkeys(CHOICES, True)
            | {"python_version": python_version, "license": "MIT"}
        )
    ]
    executable = prepared_environment(python, tmp_path_factory.getbasetemp(), reference)
    project = group[0]
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
