"""The generated pre-commit hooks run on ``git commit`` without Poetry, and offline
once installed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import ISOLATED_GIT
from toolkit.render import bake, clean_env


def path_without_poetry() -> str:
    directories = [
        directory
        for directory in os.environ["PATH"].split(os.pathsep)
        if directory and not (Path(directory) / "poetry").exists()
    ]
    path = os.pathsep.join(directories)
    assert shutil.which("poetry", path=path) is None
    assert shutil.which("git", path=path) is not None
    return path


def test_git_commit_runs_the_hooks_without_poetry(tmp_path: Path) -> None:
    project = bake(tmp_path / "render")
    env = {
        "PATH": path_without_poetry(),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        **ISOLATED_GIT,
    }
    # As the generated README says: a git repository first, then the hook.
    project.run("git", "init", "-q", env=env)
    pre_commit = Path(sys.executable).parent / "pre-commit"  # by path, off the PATH
    project.run(pre_commit, "install", env=env)
    project.run("git", "add", "--all", env=env)
    first = project.run("git", "commit", "-m", "Rendered", env=env)
    output = first.stdout + first.stderr
    for name in ("ruff check", "ruff format", "check toml", "fix end of files"):
        assert f"\n{name}." in output, output
    assert "Failed" not in output, output
    # Installed once, the hooks need no package index.
    offline = env | {
        "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": "http://127.0.0.1:9/",
        "PIP_FIND_LINKS": "",
    }
    readme = project.path / "README.md"
    readme.write_text(readme.read_text() + "\nA line.\n")
    project.run("git", "commit", "-am", "Another commit", env=offline)
    bad = project.path / "app" / "unformatted.py"
    bad.write_text("x  =  1\n")
    project.run("git", "add", "--all", env=offline)
    refused = subprocess.run(
        ["git", "commit", "-m", "Unformatted"],
        cwd=project.path,
        env=clean_env(offline),
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "ruff format" in refused.stdout + refused.stderr
