"""The generated project works with uv as well as Poetry, from the same
pyproject.toml (PEP 621 metadata, PEP 735 groups, the poetry-core backend):
``uv sync`` installs the dev group and leaves ``train`` out until asked for,
``uv run pytest`` passes, ``uv run python -m app`` serves and stops on SIGTERM,
and ``uv build`` builds a wheel and an sdist."""

import zipfile
from pathlib import Path

import pytest
from uv import find_uv_bin

from toolkit.render import BakedProject, bake, package_index_url
from toolkit.serve import http, serving

UV = find_uv_bin()


@pytest.fixture(scope="module")
def uv_env() -> dict[str, str]:
    """uv pointed at the simple index pip is configured with, as the Poetry
    tests point Poetry at it (here through the environment: no file changes)."""
    return {"UV_DEFAULT_INDEX": package_index_url()}


@pytest.fixture(scope="module")
def synced(
    tmp_path_factory: pytest.TempPathFactory, uv_env: dict[str, str]
) -> tuple[BakedProject, list[str]]:
    """The default render after ``uv sync``: (project, the files uv added)."""
    project = bake(tmp_path_factory.mktemp("uv"))
    before = set(project.files())
    project.run(UV, "sync", env=uv_env)
    return project, sorted(set(project.files()) - before)


def can_import(project: BakedProject, module: str, env: dict[str, str]) -> bool:
    try:
        project.run(UV, "run", "python", "-c", f"import {module}", env=env)
    except AssertionError:
        return False
    return True


def test_uv_sync_keeps_to_the_pyproject_and_its_own_lock(
    synced: tuple[BakedProject, list[str]],
) -> None:
    _, added = synced
    # No second configuration: uv reads pyproject.toml as it is, and adds only
    # its lock file (and .venv/, which every installer makes).
    assert added == ["uv.lock"]


def test_uv_runs_the_generated_suite(
    synced: tuple[BakedProject, list[str]], uv_env: dict[str, str]
) -> None:
    project, _ = synced
    result = project.run(UV, "run", "pytest", "-p", "no:cacheprovider", env=uv_env)
    summary = result.stdout.strip().splitlines()[-1]
    print(f"uv run pytest: {summary}")
    assert " passed" in summary, result.stdout
    assert "failed" not in summary, result.stdout
    assert "error" not in summary, result.stdout


def test_uv_run_serves_and_stops_on_sigterm(
    synced: tuple[BakedProject, list[str]], uv_env: dict[str, str], tmp_path: Path
) -> None:
    project, _ = synced
    log = tmp_path / "server.log"
    with serving([UV, "run", "python", "-m", "app"], project.path, log, uv_env) as up:
        assert http("GET", f"{up.url}/health/ready") == (200, {"status": "ready"})
    # uv passes SIGTERM on to the service, which drains and exits 0; had uv
    # died of the signal instead, the code would be -15.
    assert up.process.returncode == 0, log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_uv_builds_a_wheel_and_an_sdist_with_poetry_core(
    synced: tuple[BakedProject, list[str]], uv_env: dict[str, str], tmp_path: Path
) -> None:
    project, _ = synced
    dist = tmp_path / "dist"
    project.run(UV, "build", "--out-dir", dist, env=uv_env)
    (wheel,) = dist.glob("*.whl")
    (_sdist,) = dist.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        (generator,) = [
            name for name in archive.namelist() if name.endswith(".dist-info/WHEEL")
        ]
        assert "Generator: poetry-core" in archive.read(generator).decode()
        assert "app/model.onnx" in archive.namelist()


def test_uv_installs_the_train_group_only_when_asked(
    synced: tuple[BakedProject, list[str]], uv_env: dict[str, str]
) -> None:
    project, _ = synced
    # uv's default groups are ["dev"]; Poetry's `optional = true` is Poetry's
    # own setting, and uv leaves train out for its own reason.
    assert not can_import(project, "sklearn", uv_env)
    project.run(UV, "sync", "--group", "train", env=uv_env)
    assert can_import(project, "sklearn", uv_env)
    assert can_import(project, "skl2onnx", uv_env)
    project.run(UV, "sync", env=uv_env)  # an exact sync: train goes again
    assert not can_import(project, "sklearn", uv_env)
