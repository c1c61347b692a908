"""The template's own CI: valid workflows that test every supported Python, run
the generated project's own CI steps on a render, and catch upstream drift."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import assert_valid_workflow
from toolkit.render import DEFAULTS, TEMPLATE, BakedProject

WORKFLOWS = TEMPLATE / ".github" / "workflows"
TEMPLATE_WORKFLOW = WORKFLOWS / "template.yml"
GENERATED_WORKFLOW = ".github/workflows/ci.yml"
# A fixed minute and hour on one day of the week.
WEEKLY = re.compile(r"\d+ \d+ \* \* (?:[0-7]|[A-Za-z]{3})")
README_TEST_COMMANDS = (
    "python -m pip install -r requirements-dev.txt",
    "python -m pytest",
)


def load(path: Path) -> dict[Any, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # PyYAML reads the key `on` as True.
    return dict(workflow[True])


def run_lines(job: dict[str, Any]) -> list[str]:
    return [
        line.strip()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
        if line.strip()
    ]


def job_running(workflow: dict[Any, Any], command: str) -> dict[str, Any]:
    """The one job with a step that runs ``command``."""
    jobs = [job for job in workflow["jobs"].values() if command in run_lines(job)]
    assert len(jobs) == 1, f"{len(jobs)} jobs run {command!r}"
    return dict(jobs[0])


def setup_python(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [
        step
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/setup-python@")
    ]
    return dict(step["with"])


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return load(TEMPLATE_WORKFLOW)


@pytest.fixture(scope="module")
def generated_workflow(default_project: BakedProject) -> dict[Any, Any]:
    return load(default_project.path / GENERATED_WORKFLOW)


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, id=path.name) for path in sorted(WORKFLOWS.glob("*.y*ml"))],
)
def test_workflow_passes_the_github_workflow_schema(path: Path) -> None:
    assert_valid_workflow(path)


def test_template_tests_run_on_every_offered_python(workflow: dict[Any, Any]) -> None:
    job = job_running(workflow, "python -m pytest")
    for command in README_TEST_COMMANDS:
        assert command in run_lines(job)
    versions = job["strategy"]["matrix"]["python-version"]
    assert sorted(versions) == sorted(DEFAULTS["python_version"])
    # Each cell has every offered Python (the suite runs the generated tests on
    # each); the matrix one, listed last, is the default that runs the suite.
    *others, default = setup_python(job)["python-version"].splitlines()
    assert default == "${{ matrix.python-version }}"
    assert sorted(others) == sorted(DEFAULTS["python_version"])


def test_template_ci_runs_weekly_and_on_changes(workflow: dict[Any, Any]) -> None:
    on = triggers(workflow)
    (schedule,) = on["schedule"]
    assert WEEKLY.fullmatch(schedule["cron"]), schedule
    assert on["push"] == {"branches": ["main"]}
    assert "pull_request" in on
    assert on["workflow_dispatch"] is None  # no inputs to type into


def test_template_ci_token_is_read_only(workflow: dict[Any, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert "permissions" not in job, name


def test_template_ci_superseded_runs_cancel(workflow: dict[Any, Any]) -> None:
    concurrency = workflow["concurrency"]
    assert concurrency["cancel-in-progress"] is True
    assert "github.ref" in concurrency["group"]


def all_run_lines(workflow: dict[Any, Any]) -> list[str]:
    return [line for job in workflow["jobs"].values() for line in run_lines(job)]


def test_template_ci_runs_the_generated_projects_ci_steps_in_a_render(
    workflow: dict[Any, Any],
    generated_workflow: dict[Any, Any],
    default_project: BakedProject,
) -> None:
    generated = list(
        dict.fromkeys(
            line
            for line in all_run_lines(generated_workflow)
            if line.startswith("poetry ")
        )
    )
    assert "poetry run pytest" in generated
    job = job_running(workflow, "poetry run pytest")
    lines = run_lines(job)
    assert [line for line in lines if line.startswith("poetry ")] == generated
    render = next(
        i for i, line in enumerate(lines) if "cookiecutter --no-input" in line
    )
    assert render < lines.index(generated[0])
    directory = job["defaults"]["run"]["working-directory"]
    assert Path(directory).name == default_project.path.name
    for step in job["steps"]:
        if step.get("run", "").startswith("poetry "):
            assert step.get("working-directory", directory) == directory


def test_template_ci_render_job_uses_the_generated_cis_poetry_and_python(
    workflow: dict[Any, Any], generated_workflow: dict[Any, Any]
) -> None:
    job = job_running(workflow, "poetry run pytest")
    installs = [
        line
        for line in all_run_lines(generated_workflow)
        if line.startswith("pipx install")
    ]
    assert installs
    assert set(installs) <= set(run_lines(job))
    assert job["env"]["POETRY_VERSION"] == generated_workflow["env"]["POETRY_VERSION"]
    # The default python_version answer, the one the generated lint job runs.
    assert setup_python(job)["python-version"] == DEFAULTS["python_version"][0]


def test_template_ci_uses_the_actions_of_the_generated_ci(
    workflow: dict[Any, Any], generated_workflow: dict[Any, Any]
) -> None:
    def actions(workflow: dict[Any, Any]) -> set[str]:
        return {
            step["uses"]
            for job in workflow["jobs"].values()
            for step in job["steps"]
            if "uses" in step
        }

    assert actions(workflow) <= actions(generated_workflow)


def test_template_ci_caches_pip_on_the_test_requirements(
    workflow: dict[Any, Any],
) -> None:
    for name, job in workflow["jobs"].items():
        settings = setup_python(job)
        assert settings["cache"] == "pip", name
        assert settings["cache-dependency-path"].endswith("requirements-dev.txt"), name


def test_template_ci_scripts_interpolate_no_expressions(
    workflow: dict[Any, Any],
) -> None:
    # Event text (branch names, titles) in a script could run as shell code;
    # values reach scripts through the environment instead.
    for name, job in workflow["jobs"].items():
        for line in run_lines(job):
            assert "${{" not in line, (name, line)
