"""The template suite's harness: render the template, read what it renders, install
it, serve it and call it. The tests and benchmarks/ both import it."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter
from markdown_it import MarkdownIt

TEMPLATE = Path(__file__).resolve().parent.parent
# Published documents the tests check against (see data/README.md).
DATA = Path(__file__).resolve().parent / "data"
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())
# The trained model (ONNX, a protobuf) is the one binary file of a render.
BINARY_SUFFIXES = (".onnx",)
RESIDUE = ("{{", "{%", "%}", "{#", "cookiecutter.")
# GitHub Actions expressions look like Jinja but belong in a rendered workflow.
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


# Free-text answers that break naive escaping in every file they land in.
HOSTILE = {
    "project_name": "Bob \"B\" O'Brien's \\ {model} #1 — naïve 日本 😀",
    "description": "Says \"hi\" \\n not a newline, {braces} # not a comment 'quoted' ✓",
    "author_name": 'Zoë "Z" O\'Connor \\ {x} #2',
}
# Words that mention an option; none may be left in a render with it off.
MENTIONS = {
    "include_docker": r"docker",
    "include_github_actions": r"\.github|github actions|workflow",
    # FastAPI's OpenTelemetry has metrics of its own, unrelated to this option.
    "include_metrics": r"^(?!.*telemetry).*(metrics|prometheus)",
    "include_kubernetes": r"kubernetes|kubectl|kustomiz",
}


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


# --- rendering, and reading a render ------------------------------------------


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


# --- installing a render ------------------------------------------------------


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


# --- finding each Python the matrix needs -------------------------------------


def interpreter_candidates(version: str) -> list[Path]:
    """Where this version's interpreter may be: pyenv, then the PATH."""
    candidates: list[Path] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        result = subprocess.run(
            [pyenv, "prefix", version], capture_output=True, text=True, check=False
        )
        candidates += [
            Path(prefix.strip()) / "bin" / "python"
            for prefix in result.stdout.split(":")
            if prefix.strip()
        ]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(pyenv_root.glob(f"versions/{version}.*/bin/python"))
    on_path = shutil.which(f"python{version}")  # e.g. from actions/setup-python
    if on_path:
        candidates.append(Path(on_path))
    return candidates


def runs_as(candidate: Path, version: str) -> bool:
    """Whether this file runs as that Python version (a pyenv shim may not)."""
    try:
        result = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return False
    return result.returncode == 0 and result.stdout.strip() == version


def interpreter(version: str) -> str:
    """This version's interpreter, from pyenv or the PATH; the suite needs them all."""
    for candidate in interpreter_candidates(version):
        if runs_as(candidate, version):
            return str(candidate)
    raise AssertionError(
        f"no Python {version} found: install it with pyenv, or put python{version}"
        " on the PATH"
    )


# --- serving a render, and calling it -----------------------------------------


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


@dataclass(frozen=True)
class Running:
    """A server started by ``serving``."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    ready_s: float  # from spawn to the first 200 on /health/ready


@contextmanager
def serving(
    command: Sequence[str | Path],
    cwd: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    open_files: int | None = None,
    timeout: float = 30,
    interval: float = 0.1,
) -> Iterator[Running]:
    """Run a server until /health/ready answers 200; stop it on the way out.

    ``port`` is where the command listens; by default a free one, passed to the
    app as ``APP_PORT``. ``open_files`` caps the server's open files. The output
    goes to ``log``: a file, not a pipe a chatty access log could fill.
    """
    if port is None:
        port = free_port()
        env = {"APP_PORT": str(port), **(env or {})}

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with log.open("w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=clean_env(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_open_files,  # only sets the open-file limit
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, process, log, timeout, interval)
            yield Running(url, port, process, time.perf_counter() - started)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serving_app(
    python: Path, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Run ``python -m app`` on a free loopback port until ready; yield its URL."""
    with serving([python, "-m", "app"], cwd, log, env) as server:
        yield server.url


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


# --- the cookiecutter command line, and workflows -----------------------------


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


# --- reading Markdown as it renders -------------------------------------------


def markdown_blocks(text: str) -> list[tuple[str, str]]:
    """Each block of a Markdown text: its kind, and the plain text of its line."""
    blocks: list[tuple[str, str]] = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type == "inline":
            kinds = {child.type for child in token.children or []}
            plain = "".join(child.content for child in token.children or [])
            blocks[-1] = (f"{blocks[-1][0]} {sorted(kinds)}", plain)
        elif token.nesting == 1 or token.type in ("fence", "hr", "html_block"):
            blocks.append((token.type, token.content))
    return blocks


def assert_readme_shows(project: BakedProject, name: str, description: str) -> None:
    """The README's title and summary read as the answers, in Markdown as rendered."""
    blocks = markdown_blocks(project.read("README.md"))
    assert blocks[:2] == [
        ("heading_open ['text']", name.strip()),
        ("paragraph_open ['text']", description.strip()),
    ]
