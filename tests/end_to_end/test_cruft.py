"""The template works under cruft, the way users keep a rendered service current:
``cruft create`` runs the hooks (and refuses a bad answer with our line), and
``cruft update`` brings a later commit's change, rendered with that commit's
filters and the project's answers, exactly as a fresh create would. How cruft
links and checks projects is cruft's own business, tested by cruft.

The template under test is the working tree (tracked files and untracked ones
git does not ignore), committed to a throw-away repository, so uncommitted
edits are tested too.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import ISOLATED_GIT
from toolkit.render import TEMPLATE, clean_env

TEMPLATE_DIR = "{{cookiecutter.project_slug}}"
# Not the defaults, so the update must reuse the answers stored in .cruft.json.
ANSWERS = {"project_name": "Linked Service", "license": "Apache-2.0"}
SLUG = "linked-service"
README_LINE = "This line reached the project with cruft update."
NEW_FILE = "CHANGELOG.md"
# With a filter the new commit adds to local_extensions.py: the update must
# render the new commit with that commit's filters.
NEW_FILE_TEMPLATE = "# Changes to {{ cookiecutter.project_name | upper_case }}\n"
NEW_FILE_RENDERED = "# Changes to LINKED SERVICE\n"
FILTERS_LINE = "            markdown_text=markdown_text,\n"


@dataclass(frozen=True)
class Update:
    """A project before and after ``cruft update`` to a newer template commit."""

    template: Path
    project: Path
    update: subprocess.CompletedProcess[str]


def isolated_env() -> dict[str, str]:
    """No user's or system's git or cookiecutter configuration applies."""
    # HOME: no ~/.cookiecutterrc, and nothing written there.
    env = clean_env({"HOME": os.devnull, **ISOLATED_GIT})
    env.pop("COOKIECUTTER_CONFIG", None)
    return env


def run(
    cwd: Path, *command: str | Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=isolated_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, (
            f"{command} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def cruft(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The cruft command line, as a user runs it; the caller checks the outcome."""
    return run(cwd, sys.executable, "-m", "cruft", *args, check=False)


def git(cwd: Path, *args: str | Path) -> str:
    return run(cwd, "git", *args).stdout


def head(repository: Path) -> str:
    return git(repository, "rev-parse", "HEAD").strip()


def commit_all(repository: Path, message: str) -> str:
    git(repository, "add", "--all")
    git(repository, "commit", "--quiet", "--message", message)
    return head(repository)


def template_repository(destination: Path) -> Path:
    """A git repository holding the template as the working tree has it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for relative in filter(None, listed.split("\0")):
        source = TEMPLATE / relative
        if source.is_file():  # a tracked file deleted in the working tree is gone
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(destination, "init", "--quiet", "--initial-branch=main")
    commit_all(destination, "The template as the working tree has it")
    return destination


def create(
    template: Path, output_dir: Path, answers: dict[str, str], *flags: str
) -> subprocess.CompletedProcess[str]:
    """``cruft create`` with these answers, as a user runs it, into ``output_dir``."""
    return cruft(
        output_dir,
        "create",
        "--no-input",
        "--default-config",
        *flags,
        "--extra-context",
        json.dumps(answers),
        template,
    )


def cruft_create(template: Path, output_dir: Path) -> Path:
    """``cruft create`` with the test's answers; returns the new project."""
    output_dir.mkdir()
    result = create(template, output_dir, ANSWERS)
    assert result.returncode == 0, result.stdout + result.stderr
    return output_dir / SLUG


@pytest.mark.parametrize(
    ("answers", "slug"),
    [
        ({"project_slug": "a/../b"}, "a/../b"),
        # An answer that would switch the answers' check off is checked too.
        ({"__validate": "", "project_slug": "../escaped"}, "../escaped"),
    ],
    ids=["invalid-slug", "check-switched-off"],
)
def test_cruft_create_refuses_an_invalid_answer_leaving_nothing(
    tmp_path: Path, answers: dict[str, str], slug: str
) -> None:
    template = template_repository(tmp_path / "template")
    output_dir = tmp_path / "projects"
    output_dir.mkdir()
    result = create(template, output_dir, answers)
    assert result.returncode == 1
    # cruft shows the exception with its traceback, wrapped to the terminal's
    # width; our line is the exception's message, at the end.
    assert " ".join(result.stderr.split()).endswith(
        f"FailedHookException: ERROR: '{slug}' is not a valid project_slug:"
        " use lower-case letters, digits and single hyphens, starting with a letter,"
        " at most 63 characters (e.g. 'iris-classifier')"
    ), result.stderr
    assert list(output_dir.iterdir()) == []
    assert not (tmp_path / "escaped").exists()


def test_cruft_create_over_a_link_out_of_the_project_writes_nothing(
    tmp_path: Path,
) -> None:
    """cruft does not say where the project goes: the pre-gen hook refuses."""
    template = template_repository(tmp_path / "template")
    project = tmp_path / "projects" / "iris-classifier"
    (project / "deploy").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "deploy" / "kubernetes").symlink_to(outside)
    result = create(
        template, project.parent, {"include_kubernetes": "yes"}, "--overwrite-if-exists"
    )
    assert result.returncode == 1
    assert (
        f"ERROR: '{project}/deploy/kubernetes' is not a valid path to write the"
        " project's files to: it is a symbolic link out of the project"
    ) in result.stdout + result.stderr
    assert list(outside.iterdir()) == []
    assert [path.name for path in project.iterdir()] == ["deploy"]


def change_template(template: Path) -> str:
    """Commit a change a user would see: a README line and a new file."""
    readme = template / TEMPLATE_DIR / "README.md"
    readme.write_text(readme.read_text() + f"\n{README_LINE}\n")
    (template / TEMPLATE_DIR / NEW_FILE).write_text(NEW_FILE_TEMPLATE)
    extensions = template / "local_extensions.py"
    text = extensions.read_text()
    assert FILTERS_LINE in text
    extensions.write_text(
        text.replace(FILTERS_LINE, f"{FILTERS_LINE}            upper_case=str.upper,\n")
    )
    return commit_all(template, "Change the generated README, add a file")


def project_files(project: Path) -> dict[str, bytes]:
    """Every file of the project but git's, by path."""
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A template repository and a project freshly created from it."""
    root = tmp_path_factory.mktemp("create")
    template = template_repository(root / "template")
    return template, cruft_create(template, root / "projects")


@pytest.fixture(scope="module")
def updated(tmp_path_factory: pytest.TempPathFactory) -> Update:
    """An unmodified project, committed, updated after the template changed."""
    root = tmp_path_factory.mktemp("update")
    template = template_repository(root / "template")
    project = cruft_create(template, root / "projects")
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Created with cruft")  # cruft updates only a clean tree
    change_template(template)
    update = cruft(project, "update", "--skip-apply-ask")
    return Update(template, project, update)


def test_cruft_create_renders_the_project_and_runs_the_hooks(
    created: tuple[Path, Path],
) -> None:
    _, project = created
    for path in ("pyproject.toml", "README.md", "app/main.py", "app/model.onnx"):
        assert (project / path).is_file(), path
    assert "Apache License" in (project / "LICENSE").read_text()
    assert not (project / "_licenses").exists()  # the post-gen hook ran
    assert not (project / "deploy").exists()  # and pruned what is off


def test_cruft_update_matches_a_fresh_create_from_the_new_commit(
    updated: Update, tmp_path: Path
) -> None:
    assert updated.update.returncode == 0, updated.update.stdout + updated.update.stderr
    fresh = cruft_create(updated.template, tmp_path / "fresh")
    assert project_files(updated.project) == project_files(fresh)
