"""The declared floors are real: the default render, installed by the lowest
Poetry it allows (``requires-poetry``) with every direct dependency at its floor
(``>=X`` read as ``==X``: the runtime dependencies and every dependency group,
dev and train alike, as the generated CI installs them) on the lowest offered
Python, passes its own tests, lint and type check; the lowest poetry-core its
``[build-system]`` allows builds its wheel.

Those two floors are where the fixes the project relies on landed: poetry-core
2.2.1 accepts a PEP 735 group declared optional (the train group; 2.2.0 refuses
the configuration), and Poetry 2.3 counts the PEP 735 groups in the lock file's
hash (2.2 does not notice a changed group, and takes a lock written by a newer
Poetry for stale). The tests below check what each floor carries.

The floors come from the rendered pyproject.toml, so a new dependency is covered
as soon as it is declared. The weekly template workflow installs the newest
releases; this test keeps the oldest allowed ones honest.
"""

import itertools
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.harness import interpreter
from toolkit.render import DEFAULTS, BakedProject, bake, clean_env, use_package_index

pytestmark = pytest.mark.floors

LOWEST_PYTHON = min(
    DEFAULTS["python_version"], key=lambda v: tuple(map(int, v.split(".")))
)


def floor_pins(requirements: list[str]) -> dict[str, str]:
    """Each requirement pinned to its floor, by distribution name."""
    pins = {}
    for text in requirements:
        requirement = Requirement(text)
        floors = [s.version for s in requirement.specifier if s.operator == ">="]
        if len(floors) != 1:
            raise AssertionError(
                f"'{text}' declares no single floor: write it as"
                f" '{requirement.name}>=X' (an upper bound may follow)"
            )
        extras = (
            f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        )
        marker = f"; {requirement.marker}" if requirement.marker else ""
        pins[requirement.name] = f"{requirement.name}{extras}=={floors[0]}{marker}"
    return pins


def pinned_to_floors(pyproject: str, requirements: list[str]) -> str:
    """The pyproject.toml text with each of these requirements at its floor."""
    pins = floor_pins(requirements)
    for text in requirements:
        # The template writes each requirement as a plain TOML string, which
        # reads the same as a JSON one.
        written = json.dumps(text)
        if written not in pyproject:
            raise AssertionError(f"{written} is not written as such in pyproject.toml")
        pin = pins[Requirement(text).name]
        pyproject = pyproject.replace(written, json.dumps(pin))
    return pyproject


def declared_requirements(pyproject: dict[str, Any]) -> list[str]:
    """The runtime dependencies and those of every dependency group."""
    return [
        *pyproject["project"]["dependencies"],
        *itertools.chain.from_iterable(pyproject["dependency-groups"].values()),
    ]


def test_floor_pins_read_each_floor_as_the_version() -> None:
    assert floor_pins(["uvicorn[standard]>=0.54", "ruff>=0.17,<1"]) == {
        "uvicorn": "uvicorn[standard]==0.54",
        "ruff": "ruff==0.17",
    }


def test_floor_pins_refuse_a_requirement_without_a_floor() -> None:
    with pytest.raises(AssertionError, match="'fastapi' declares no single floor"):
        floor_pins(["fastapi"])


def test_pinned_to_floors_rewrites_each_requirement_where_it_stands() -> None:
    pyproject = 'dependencies = [\n    "fastapi>=0.165",\n    "ruff>=0.17,<1",\n]\n'
    assert pinned_to_floors(pyproject, ["fastapi>=0.165", "ruff>=0.17,<1"]) == (
        'dependencies = [\n    "fastapi==0.165",\n    "ruff==0.17",\n]\n'
    )


def venv_with(path: Path, requirement: str) -> Path:
    """A new venv on the lowest Python with this requirement; its bin directory."""
    for command in (
        [interpreter(LOWEST_PYTHON), "-m", "venv", path],
        [path / "bin" / "python", "-m", "pip", "install", "--quiet", requirement],
    ):
        result = subprocess.run(
            command, env=clean_env(), capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    return path / "bin"


@pytest.fixture(scope="module")
def floor_poetry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lowest Poetry the default render allows, in a venv of its own."""
    project = bake(tmp_path_factory.mktemp("requires-poetry"))
    (pin,) = floor_pins(
        [f"poetry{project.pyproject()['tool']['poetry']['requires-poetry']}"]
    ).values()
    bin_dir = venv_with(tmp_path_factory.mktemp("floor-poetry") / "venv", pin)
    return bin_dir / "poetry"


@pytest.fixture(scope="module")
def at_floors(
    tmp_path_factory: pytest.TempPathFactory, floor_poetry: Path
) -> tuple[BakedProject, Path, dict[str, str]]:
    """The default render, installed at its floors by the floor Poetry:
    (project, its python, pins)."""
    project = bake(tmp_path_factory.mktemp("floors"))
    requirements = declared_requirements(project.pyproject())
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(pinned_to_floors(pyproject.read_text(), requirements))
    use_package_index(project)
    project.run(floor_poetry, "env", "use", interpreter(LOWEST_PYTHON))
    # The project and the pins in one resolution: floors that contradict each
    # other (one floor's release needing more than another floor) fail here.
    project.run(floor_poetry, "install", "--with", "train")
    python = project.path / ".venv" / "bin" / "python"
    return project, python, floor_pins(requirements)


def test_floors_are_what_got_installed(
    at_floors: tuple[BakedProject, Path, dict[str, str]],
) -> None:
    project, python, pins = at_floors
    installed = json.loads(
        project.run(
            python,
            "-c",
            "import json, sys; from importlib.metadata import version;"
            " print(json.dumps({n: version(n) for n in sys.argv[1:]}))",
            *pins,
        ).stdout
    )
    off_floor = {
        name: version
        for name, version in installed.items()
        if not Requirement(pins[name]).specifier.contains(version)
    }
    assert off_floor == {}, pins
    version = project.run(python, "--version").stdout.split()[1]
    assert version.rpartition(".")[0] == LOWEST_PYTHON


def test_generated_suite_passes_at_the_floors(
    at_floors: tuple[BakedProject, Path, dict[str, str]],
) -> None:
    project, python, _ = at_floors
    result = project.run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    summary = result.stdout.strip().splitlines()[-1]
    print(f"at the floors, on Python {LOWEST_PYTHON}: {summary}")
    assert " passed" in summary, result.stdout
    assert "failed" not in summary, result.stdout


def test_generated_lint_and_types_pass_at_the_floors(
    at_floors: tuple[BakedProject, Path, dict[str, str]],
) -> None:
    project, python, _ = at_floors
    bin_dir = python.parent
    project.run(bin_dir / "ruff", "check", "--no-cache", ".")
    project.run(bin_dir / "ruff", "format", "--no-cache", "--check", ".")
    project.run(bin_dir / "mypy", "--cache-dir", "/dev/null", "app", "tests")


def test_floor_poetry_lock_holds_for_a_newer_poetry_and_notices_a_group_change(
    at_floors: tuple[BakedProject, Path, dict[str, str]],
    floor_poetry: Path,
    tmp_path: Path,
) -> None:
    project, _, _ = at_floors
    copy = BakedProject(tmp_path / "copy")
    shutil.copytree(project.path, copy.path, ignore=shutil.ignore_patterns(".venv"))
    # The lock the floor Poetry wrote is fresh for the Poetry running this
    # suite (requirements-dev.txt's: newer than the floor, like the one the
    # Dockerfile and CI pin).
    copy.run(sys.executable, "-m", "poetry", "check", "--lock")
    # A changed train group makes that lock stale, for the floor Poetry too.
    first = project.pyproject()["dependency-groups"]["train"][0]
    pyproject = copy.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(json.dumps(first), json.dumps(f"{first},<1000"))
    )
    stale = subprocess.run(
        [floor_poetry, "check", "--lock"],
        cwd=copy.path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert stale.returncode != 0, stale.stdout
    assert "changed significantly" in stale.stdout + stale.stderr


def test_floor_poetry_core_builds_the_wheel(
    at_floors: tuple[BakedProject, Path, dict[str, str]], tmp_path: Path
) -> None:
    project, _, _ = at_floors
    (backend,) = project.pyproject()["build-system"]["requires"]
    (pin,) = floor_pins([backend]).values()
    python = venv_with(tmp_path / "venv", pin) / "python"
    dist = tmp_path / "dist"
    # No build isolation: the backend is the floor's, not the newest release.
    project.run(
        python,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-build-isolation",
        "--no-deps",
        "-w",
        dist,
        ".",
    )
    (wheel,) = dist.glob("*.whl")
    assert "app/model.onnx" in zipfile.ZipFile(wheel).namelist()
