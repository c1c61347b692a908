import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.render import BakedProject, bake, poetry_install

SLOW = Path(__file__).parent / "end_to_end"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/end_to_end/ is slow, and only that: the layout is
    the split, and ``-m slow`` / ``-m "not slow"`` select by it."""
    for item in items:
        if item.path.is_relative_to(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def temporary_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Cookiecutter writes each rendered hook to a temporary file and leaves it
    there; keep those in pytest's own temporary tree, which it prunes."""
    path = str(tmp_path_factory.mktemp("tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", path)
        patch.setenv("TMPDIR", path)
        yield


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
