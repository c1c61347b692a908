"""The harness finds each Python the matrix needs, from pyenv or the PATH, and
says how to install one it cannot find."""

from pathlib import Path

import pytest

from tests.harness import interpreter


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
