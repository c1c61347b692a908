"""Render the template, read the render, and install it with Poetry or pip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())
# The trained model (ONNX, a protobuf) is the one binary file of a render.
BINARY_SUFFIXES = (".onnx",)


@dataclass(frozen=True)
class BakedProject:
    path: Path

    def has_file(self, relative: str) -> bool:
        return (self.path / relative).is_file()

    def read(self, relative: str) -> str:
        return (self.path / relative).read_text(encoding="utf-8")

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.path).as_posix()
            for p in self.path.rglob("*")
            if p.is_file() and ".venv" not in p.parts
        )

    def text_files(self) -> list[str]:
        """The files to read as text: all but the model artifact."""
        return [name for name in self.files() if not name.endswith(BINARY_SUFFIXES)]

    def pyproject(self) -> dict[str, Any]:
        return tomllib.loads(self.read("pyproject.toml"))

    def run(
        self,
        *command: str | Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the project; fail with its output if it fails."""
        result = subprocess.run(
            [str(part) for part in command],
            cwd=self.path,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, (
            f"{command} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        return result


def bake(output_dir: Path, **answers: Any) -> BakedProject:
    """Render the template with these answers and the defaults for the rest."""
    path = cookiecutter(
        str(TEMPLATE),
        no_input=True,
        extra_context=answers,
        output_dir=str(output_dir),
        default_config=True,
    )
    return BakedProject(Path(path))


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process, outside any active virtualenv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "POETRY_ACTIVE", "PYTHONPATH"}
        and not key.startswith("APP_")
    }
    env["POETRY_VIRTUALENVS_IN_PROJECT"] = "true"
    env["POETRY_NO_INTERACTION"] = "1"
    env.update(extra or {})
    return env


def package_index_url() -> str:
    """The simple index pip installs from: its configured one, or its default.

    pip has no public interface for its default index; the constant it uses
    itself stands in, so that no host name is written here.
    """
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


def use_package_index(project: BakedProject) -> None:
    """Point the render's Poetry at the simple index pip is configured with.

    Poetry's own JSON look-ups may fail where pip's simple index answers, so
    the rendered copy (never the template) gets that index as its source.
    """
    project.run(
        sys.executable,
        "-m",
        "poetry",
        "source",
        "add",
        "--priority=primary",
        "index",
        package_index_url(),
    )


def poetry_install(
    project: BakedProject, *args: str, python: str = sys.executable
) -> Path:
    """``poetry install`` into a new in-project venv; returns its bin directory."""
    use_package_index(project)
    poetry = [sys.executable, "-m", "poetry"]
    project.run(*poetry, "env", "use", python)
    project.run(*poetry, "install", *args)
    return project.path / ".venv" / "bin"


def pip_install(project: BakedProject, venv: Path, requirement: str | Path) -> Path:
    """Install ``requirement`` with pip into a new venv; return its python."""
    project.run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    project.run(python, "-m", "pip", "install", "--quiet", requirement)
    return python
