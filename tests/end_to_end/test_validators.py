"""The rendered project passes the ecosystem's own validators, not just ours.

Dockerfiles (hadolint) and workflows (check-jsonschema) are checked in
test_docker_and_ci.py; `pre-commit run --all-files` in test_end_to_end.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import BakedProject, bake

ANSWERS = {
    "defaults": {},
    "all-on": {"include_kubernetes": True},
    "all-off": {
        "include_docker": False,
        "include_github_actions": False,
        "include_metrics": False,
    },
    "proprietary-3.13": {"license": "Proprietary", "python_version": "3.13"},
}


@pytest.fixture(params=list(ANSWERS), scope="module")
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> BakedProject:
    return bake(tmp_path_factory.mktemp(request.param), **ANSWERS[request.param])


def validate_pyproject(path: Path) -> subprocess.CompletedProcess[str]:
    # Every installed plugin is on, poetry's and ruff's schemas included.
    return subprocess.run(
        [sys.executable, "-m", "validate_pyproject", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_pyproject_passes_validate_pyproject(project: BakedProject) -> None:
    result = validate_pyproject(project.path / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid file" in result.stdout


@pytest.mark.parametrize(
    ("table", "bad_line"),
    [("[tool.ruff]", 'line-length = "long"'), ("[tool.poetry]", "requires-poetry = 2")],
    ids=["ruff-plugin", "poetry-plugin"],
)
def test_validate_pyproject_really_checks_tool_tables(
    default_project: BakedProject, tmp_path: Path, table: str, bad_line: str
) -> None:
    text = default_project.read("pyproject.toml").replace(
        table, f"{table}\n{bad_line}", 1
    )
    broken = tmp_path / "pyproject.toml"
    broken.write_text(text)
    assert validate_pyproject(broken).returncode != 0


def test_pyproject_passes_poetry_check_strict(project: BakedProject) -> None:
    result = project.run(sys.executable, "-m", "poetry", "check", "--strict")
    assert "All set!" in result.stdout


def test_pre_commit_config_is_valid(project: BakedProject) -> None:
    project.run(
        sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"
    )
