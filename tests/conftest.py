from pathlib import Path

import pytest

from tests.bake import BakedProject, bake, poetry_install


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> BakedProject:
    """The defaults, rendered once and only read by the tests that share it."""
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    path = tmp_path / "output"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def dev_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[BakedProject, Path]:
    """The defaults, installed as a developer would, training group included."""
    project = bake(tmp_path_factory.mktemp("dev"))
    return project, poetry_install(project, "--with", "train")
