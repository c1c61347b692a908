"""The container image and the CI workflow: linted by the tools that check them
(hadolint, GitHub's workflow schema), read, and run where that needs no Docker."""

import io
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser

from tests.harness import assert_valid_workflow
from toolkit.render import DEFAULTS, BakedProject, bake, clean_env

WORKFLOW = ".github/workflows/ci.yml"
NEWEST_PYTHON = max(
    DEFAULTS["python_version"], key=lambda v: tuple(map(int, v.split(".")))
)

PYTHON_VERSIONS = [pytest.param(v, id=f"py{v}") for v in DEFAULTS["python_version"]]
WORKFLOW_VARIANTS = [
    pytest.param(
        (docker, metrics, version),
        id=f"py{version}-docker-{'on' if docker else 'off'}"
        f"-metrics-{'on' if metrics else 'off'}",
    )
    for docker, metrics, version in itertools.product(
        (True, False), (True, False), DEFAULTS["python_version"]
    )
]
# Paths a build must not see, and paths the Dockerfile copies.
IGNORED = [
    ".env",
    ".git/HEAD",
    ".github/workflows/ci.yml",
    ".venv/bin/python",
    ".mypy_cache/3.11/app",
    "app/__pycache__/main.cpython-311.pyc",
    "dist/iris_classifier-0.1.0-py3-none-any.whl",
    "notebooks/explore.ipynb",
    "tests/test_main.py",
]
KEPT = [
    "LICENSE",
    "README.md",
    "app/main.py",
    "app/model.onnx",
    "poetry.lock",
    "pyproject.toml",
]


# --- Dockerfile ---------------------------------------------------------------


def parse(dockerfile: str) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(dockerfile.encode()))


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    return [
        (instruction["instruction"], instruction["value"])
        for instruction in parse(dockerfile).structure
        if instruction["instruction"] != "COMMENT"
    ]


def runtime_stage(dockerfile: str) -> tuple[str, list[tuple[str, str]]]:
    """The final stage: its base image, build arguments' defaults substituted,
    and its instructions."""
    pairs = instructions(dockerfile)
    last_from = max(i for i, (keyword, _) in enumerate(pairs) if keyword == "FROM")
    return parse(dockerfile).baseimage, pairs[last_from + 1 :]


def arguments_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in stage if name == keyword]


def healthcheck_command(dockerfile: str) -> list[str]:
    _, stage = runtime_stage(dockerfile)
    (healthcheck,) = arguments_of(stage, "HEALTHCHECK")
    _, _, command = healthcheck.partition("CMD ")
    return list(json.loads(command))


def hadolint() -> str:
    """The hadolint of requirements-dev.txt; a missing linter fails, never skips."""
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert found, "hadolint not found: pip install -r requirements-dev.txt"
    return found


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_dockerfile_passes_hadolint(
    output_dir: Path, tmp_path: Path, python_version: str
) -> None:
    project = bake(output_dir, python_version=python_version)
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", "Dockerfile"],
        cwd=project.path,
        env={"HOME": str(tmp_path)},  # no user config may ignore a rule
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_dockerfile_runs_the_chosen_python(
    output_dir: Path, python_version: str
) -> None:
    project = bake(output_dir, python_version=python_version)
    image, _ = runtime_stage(project.read("Dockerfile"))
    assert image == f"python:{python_version}-slim"


def test_dockerfile_runtime_stage_copies_only_from_the_build_stage(
    default_project: BakedProject,
) -> None:
    _, stage = runtime_stage(default_project.read("Dockerfile"))
    copies = arguments_of(stage, "COPY") + arguments_of(stage, "ADD")
    assert copies
    assert all(copy.startswith("--from=build ") for copy in copies), copies


def test_dockerfile_runs_as_a_numeric_non_root_user(
    default_project: BakedProject,
) -> None:
    _, stage = runtime_stage(default_project.read("Dockerfile"))
    user = arguments_of(stage, "USER")[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), user
    assert int(user.split(":")[0]) != 0


def test_dockerfile_listens_on_every_interface_on_port_8000(
    default_project: BakedProject,
) -> None:
    dockerfile = default_project.read("Dockerfile")
    _, stage = runtime_stage(dockerfile)
    assert arguments_of(stage, "EXPOSE") == ["8000"]
    env = parse(dockerfile).envs  # the final stage's
    assert env["APP_HOST"] == "0.0.0.0"  # noqa: S104
    assert env["PYTHONUNBUFFERED"] == "1"


def commands_run(stage: list[tuple[str, str]]) -> list[str]:
    """The shell commands of a stage's RUN instructions, split at ``&&``."""
    return [
        command.strip()
        for run in arguments_of(stage, "RUN")
        for command in run.split("&&")
    ]


def test_dockerfile_virtualenv_has_no_pip_or_setuptools(
    default_project: BakedProject, tmp_path: Path
) -> None:
    # The runtime stage gets the build stage's virtualenv: make one the way
    # the Dockerfile does, and look inside.
    (command,) = [
        command
        for command in commands_run(instructions(default_project.read("Dockerfile")))
        if command.startswith("python -m venv ")
    ]
    *options, target = shlex.split(command)[3:]
    assert target == "/opt/venv"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", *options, venv], check=True)
    installed = {path.name.split("-")[0] for path in venv.glob("lib/*/site-packages/*")}
    assert not installed & {"pip", "setuptools"}, installed


def test_dockerfile_runtime_stage_removes_the_base_images_pip(
    default_project: BakedProject,
) -> None:
    _, stage = runtime_stage(default_project.read("Dockerfile"))
    (uninstall,) = [
        shlex.split(command)
        for command in commands_run(stage)
        if command.startswith("python -m pip uninstall ")
    ]
    assert {"--yes", "pip", "setuptools"} <= set(uninstall), uninstall


def test_dockerfile_starts_the_service(default_project: BakedProject) -> None:
    _, stage = runtime_stage(default_project.read("Dockerfile"))
    (command,) = arguments_of(stage, "CMD")
    assert json.loads(command) == ["python", "-m", "app"]


def test_dockerfile_healthcheck_asks_health_live_with_python(
    default_project: BakedProject,
) -> None:
    command = healthcheck_command(default_project.read("Dockerfile"))
    assert command[:2] == ["python", "-c"]  # exec form; the image has no curl
    assert "/health/live" in command[2]


@contextmanager
def health_stub(status: int) -> Iterator[int]:
    """A server whose /health/live answers ``status``; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health/live" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(command: list[str], port: int) -> int:
    result = subprocess.run(
        [sys.executable, *command[1:]],
        env=clean_env({"APP_PORT": str(port)}),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [pytest.param(200, 0, id="live-healthy"), pytest.param(503, 1, id="503-unhealthy")],
)
def test_dockerfile_healthcheck_follows_health_live_on_app_port(
    default_project: BakedProject, status: int, exit_code: int
) -> None:
    command = healthcheck_command(default_project.read("Dockerfile"))
    with health_stub(status) as port:
        assert run_healthcheck(command, port) == exit_code


def test_dockerfile_healthcheck_is_unhealthy_when_nothing_listens(
    default_project: BakedProject,
) -> None:
    command = healthcheck_command(default_project.read("Dockerfile"))
    with health_stub(200) as port:
        pass
    assert run_healthcheck(command, port) == 1  # Docker: 1 is unhealthy


# --- .dockerignore ------------------------------------------------------------


def docker_ignores(dockerignore: str, path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context, by the Docker SDK's
    port of Docker's own matcher (the last matching pattern wins, ``!`` lets a
    path back in, a pattern that matches a directory covers its contents)."""
    patterns = [
        line.strip()
        for line in dockerignore.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return bool(PatternMatcher(patterns).matches(path))


@pytest.mark.parametrize("path", IGNORED)
def test_dockerignore_keeps_out(default_project: BakedProject, path: str) -> None:
    assert docker_ignores(default_project.read(".dockerignore"), path)


@pytest.mark.parametrize("path", KEPT)
def test_dockerignore_lets_in(default_project: BakedProject, path: str) -> None:
    assert not docker_ignores(default_project.read(".dockerignore"), path)


def test_dockerignore_lets_in_everything_the_dockerfile_copies(
    default_project: BakedProject,
) -> None:
    dockerignore = default_project.read(".dockerignore")
    sources = [
        source.rstrip("*")
        for keyword, arguments in instructions(default_project.read("Dockerfile"))
        if keyword == "COPY" and not arguments.startswith("--from=")
        for source in arguments.split()[:-1]
    ]
    assert "app" in sources
    assert [s for s in sources if docker_ignores(dockerignore, s)] == []


# --- GitHub Actions workflow --------------------------------------------------


def workflow_jobs(project: BakedProject) -> dict[str, Any]:
    return dict(yaml.safe_load(project.read(WORKFLOW))["jobs"])


def run_steps(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


@pytest.fixture(params=WORKFLOW_VARIANTS)
def workflow_variant(
    request: pytest.FixtureRequest, output_dir: Path
) -> tuple[BakedProject, bool, bool, str]:
    include_docker, include_metrics, python_version = request.param
    project = bake(
        output_dir,
        include_docker=include_docker,
        include_metrics=include_metrics,
        python_version=python_version,
    )
    return project, include_docker, include_metrics, python_version


def test_workflow_passes_the_github_workflow_schema(
    workflow_variant: tuple[BakedProject, bool, bool, str],
) -> None:
    project = workflow_variant[0]
    assert_valid_workflow(project.path / WORKFLOW)


def test_workflow_jobs_follow_the_answers(
    workflow_variant: tuple[BakedProject, bool, bool, str],
) -> None:
    project, include_docker, include_metrics, python_version = workflow_variant
    jobs = workflow_jobs(project)
    assert set(jobs) == {"lint", "test"} | ({"docker"} if include_docker else set())
    matrix = jobs["test"]["strategy"]["matrix"]["python-version"]
    assert matrix == list(dict.fromkeys([python_version, NEWEST_PYTHON]))
    lint_steps = jobs["lint"]["steps"]
    assert any(
        step.get("with", {}).get("python-version") == python_version
        for step in lint_steps
    )
    if include_docker:
        smoke = run_steps(jobs["docker"])
        assert ("/metrics" in smoke) == include_metrics


def test_workflow_lints_and_tests_with_the_project_commands(
    default_project: BakedProject,
) -> None:
    jobs = workflow_jobs(default_project)
    lint = run_steps(jobs["lint"])
    for command in ("ruff check .", "ruff format --check .", "mypy app tests"):
        assert f"poetry run {command}" in lint
    assert "poetry run pytest" in run_steps(jobs["test"])


def test_workflow_smoke_tests_the_running_image(
    default_project: BakedProject,
) -> None:
    docker = workflow_jobs(default_project)["docker"]
    smoke = run_steps(docker)
    for expected in (
        "docker build",
        "docker run",
        "/health/ready",
        "/predict",
        "setosa",
    ):
        assert expected in smoke
    conditions = {step.get("if"): step.get("run", "") for step in docker["steps"]}
    assert "docker logs" in conditions["failure()"]
    assert "docker stop" in conditions["always()"]


def test_workflow_token_is_read_only_and_superseded_runs_cancel(
    default_project: BakedProject,
) -> None:
    workflow = yaml.safe_load(default_project.read(WORKFLOW))
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    # PyYAML reads the key `on` as True.
    assert workflow[True] == {"push": {"branches": ["main"]}, "pull_request": None}
