"""Render the template and look at, or run, what it renders."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())
# The trained model (ONNX, a protobuf) is the one binary file of a render.
BINARY_SUFFIXES = (".onnx",)
RESIDUE = ("{{", "{%", "%}", "{#", "cookiecutter.")
# GitHub Actions expressions look like Jinja but belong in a rendered workflow.
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


# One flower of each end of the Iris data, as the API takes them: what a
# default render must classify as setosa and virginica.
SETOSA = {
    "sepal_length": 5.1,
    "sepal_width": 3.5,
    "petal_length": 1.4,
    "petal_width": 0.2,
}
VIRGINICA = {
    "sepal_length": 6.7,
    "sepal_width": 3.0,
    "petal_length": 5.2,
    "petal_width": 2.3,
}


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

    def assert_ruff_clean(self) -> None:
        """Ruff's checks and formatting pass on the project as it is."""
        self.run(sys.executable, "-m", "ruff", "check", "--no-cache", ".")
        self.run(sys.executable, "-m", "ruff", "format", "--no-cache", "--check", ".")

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


def template_residue(text: str) -> list[str]:
    """The template markers left in a rendered file's text."""
    text = GITHUB_EXPRESSION.sub("", text)
    return [marker for marker in RESIDUE if marker in text]


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
    """The simple index pip is configured with (pip's own default otherwise)."""
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


def poetry_install(
    project: BakedProject, *args: str, python: str = sys.executable
) -> Path:
    """``poetry install`` into a new in-project venv; returns its bin directory.

    Poetry's own JSON look-ups fail on this network's registry, so the rendered
    copy (never the template) gets the simple index pip uses as its source.
    """
    poetry = [sys.executable, "-m", "poetry"]
    project.run(
        *poetry, "source", "add", "--priority=primary", "index", package_index_url()
    )
    project.run(*poetry, "env", "use", python)
    project.run(*poetry, "install", *args)
    return project.path / ".venv" / "bin"


def pip_install(project: BakedProject, venv: Path, requirement: str | Path) -> Path:
    """Install ``requirement`` with pip into a new venv; return its python."""
    project.run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    project.run(python, "-m", "pip", "install", "--quiet", requirement)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: Any = None, timeout: float = 5
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@contextmanager
def serving(
    python: Path, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Run ``python -m app`` on a free loopback port until ready; yield its URL."""
    port = free_port()
    environment = clean_env({"APP_PORT": str(port), **(env or {})})
    with log.open("w") as output:  # a file, not a pipe a chatty log could fill
        process = subprocess.Popen(
            [str(python), "-m", "app"],
            cwd=cwd,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, process, log)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_until_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 30,
    interval: float = 0.1,
) -> None:
    """Poll /health/ready until 200; fail with the server's log if it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"service exited {process.returncode}:\n{log.read_text()}"
            )
        try:
            if http("GET", f"{url}/health/ready", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"service not ready within {timeout} s:\n{log.read_text()}")


def run_cli(
    output_dir: Path,
    *answers: str,
    input_text: str | None = None,
    config_file: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the cookiecutter command line, as a user would."""
    no_input = [] if input_text is not None else ["--no-input"]
    config = ["--default-config"]
    if config_file is not None:
        config = ["--config-file", str(config_file)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            *no_input,
            *config,
            "--output-dir",
            str(output_dir),
            str(TEMPLATE),
            *answers,
        ],
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_valid_workflow(path: Path) -> None:
    """A GitHub Actions workflow passes the schema GitHub's own tools use."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
