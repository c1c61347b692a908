"""The template suite's own helpers, beyond what it shares with the benchmarks
(``toolkit``): answers that test escaping, the checks a render must pass, the
Pythons the matrix needs, the cookiecutter command line, Markdown as rendered."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from markdown_it import MarkdownIt

from toolkit.render import TEMPLATE, BakedProject
from toolkit.serve import SETOSA, VIRGINICA, http

# Published documents the tests check against (see data/README.md).
DATA = Path(__file__).resolve().parent / "data"
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


# A git that reads no user's or system's configuration, with an identity of
# its own for the commits a test makes.
ISOLATED_GIT = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "template-tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "template-tests@example.com",
}


# --- reading a render, and checking it as rendered --------------------------


def template_residue(text: str) -> list[str]:
    """The template markers left in a rendered file's text."""
    text = GITHUB_EXPRESSION.sub("", text)
    return [marker for marker in RESIDUE if marker in text]


def assert_ruff_clean(project: BakedProject, bin_dir: Path | None = None) -> None:
    """Ruff's checks and formatting pass on the project as it is: with the ruff
    of its own virtualenv (``bin_dir``) where it is installed, else the suite's."""
    ruff = [bin_dir / "ruff"] if bin_dir else [sys.executable, "-m", "ruff"]
    project.run(*ruff, "check", "--no-cache", ".")
    project.run(*ruff, "format", "--no-cache", "--check", ".")


def assert_lint_and_type_clean(project: BakedProject, bin_dir: Path) -> None:
    """Ruff and mypy pass on an installed render as it is, with its own tools."""
    assert_ruff_clean(project, bin_dir)
    project.run(bin_dir / "mypy", "--cache-dir", "/dev/null", "app", "tests")


def assert_suite_passed(output: str, at_least: int = 1) -> str:
    """A pytest run's summary line says at least ``at_least`` passed, and none
    failed or was skipped (a skip hides a test that did not run); returns it."""
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed, output
    assert int(passed.group(1)) >= at_least, summary
    assert "failed" not in summary, output
    assert "skipped" not in summary, output
    return summary


def assert_generated_suite_passes(
    project: BakedProject, bin_dir: Path, at_least: int = 1
) -> None:
    """Every test of an installed render, the slow ones included, passes with
    none skipped and no warning."""
    result = project.run(
        bin_dir / "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        "slow or not slow",
    )
    summary = assert_suite_passed(result.stdout, at_least)
    assert "warning" not in summary, result.stdout


def assert_classifies_the_samples(url: str) -> None:
    """A default render's service, ready, classifies each end of the Iris data."""
    assert http("GET", f"{url}/health/ready") == (200, {"status": "ready"})
    for sample, label in ((SETOSA, "setosa"), (VIRGINICA, "virginica")):
        status, body = http("POST", f"{url}/predict", sample)
        assert (status, body["label"]) == (200, label), body


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
