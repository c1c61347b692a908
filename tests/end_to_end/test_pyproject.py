"""Each kind of rendered pyproject.toml passes validate-pyproject (with the
Poetry and ruff plugins) and ``poetry check --strict``: one integration test per
tool. The Dockerfile (hadolint) and workflows (check-jsonschema) are checked in
tests/artifacts/test_docker_and_ci.py; the pre-commit hooks run in
tests/end_to_end/test_install.py and test_pre_commit.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.render import BakedProject, bake

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


def test_pyproject_passes_poetry_check_strict(project: BakedProject) -> None:
    result = project.run(sys.executable, "-m", "poetry", "check", "--strict")
    assert "All set!" in result.stdout
