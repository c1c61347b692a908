"""The declared dependency floors are real: the default render, installed with
every direct dependency at its floor (``>=X`` read as ``==X``: the runtime
dependencies and every dependency group, dev and train alike, as the generated
CI installs them) on the lowest offered Python, passes its own tests, lint and
type check.

The floors come from the rendered pyproject.toml, so a new dependency is covered
as soon as it is declared. The weekly template workflow installs the newest
releases; this test keeps the oldest allowed ones honest.
"""

import itertools
import json
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.harness import DEFAULTS, BakedProject, bake, interpreter

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


def test_floor_pins_read_each_floor_as_the_version() -> None:
    assert floor_pins(["uvicorn[standard]>=0.54", "ruff>=0.17,<1"]) == {
        "uvicorn": "uvicorn[standard]==0.54",
        "ruff": "ruff==0.17",
    }


def test_floor_pins_refuse_a_requirement_without_a_floor() -> None:
    with pytest.raises(AssertionError, match="'fastapi' declares no single floor"):
        floor_pins(["fastapi"])


@pytest.fixture(scope="module")
def at_floors(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BakedProject, Path, dict[str, str]]:
    """The default render, installed at its floors: (project, its python, pins)."""
    project = bake(tmp_path_factory.mktemp("floors"))
    pyproject = project.pyproject()
    pins = floor_pins(
        [
            *pyproject["project"]["dependencies"],
            *itertools.chain.from_iterable(pyproject["dependency-groups"].values()),
        ]
    )
    venv = project.path / ".venv"
    project.run(interpreter(LOWEST_PYTHON), "-m", "venv", venv)
    python = venv / "bin" / "python"
    # The project and the pins in one resolution: floors that contradict each
    # other (one floor's release needing more than another floor) fail here.
    project.run(python, "-m", "pip", "install", "--quiet", *pins.values(), ".")
    project.run(python, "-m", "pip", "check")
    return project, python, pins


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
