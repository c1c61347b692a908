"""Finish the rendered project: prune what is off, then say what to do next.

Runs inside the new project directory. Needs no network and no Poetry.
Removes only what this render wrote: the pre-gen hook set aside whatever was at
a pruned path before, and this hook puts it back.
"""

import json
import shlex
import shutil
from collections.abc import Iterable
from pathlib import Path

# The answers, rendered in by cookiecutter. A raw string keeps JSON's escapes intact.
ANSWERS = r"""{{ cookiecutter | tojson }}"""

SET_ASIDE = ".cookiecutter-set-aside"  # as in pre_gen_project.py
TASK_FILES = "_tasks"  # as in local_extensions.py
NEXT_STEPS = """
Created {project}. Next:

    cd {quoted}
    poetry install
    poetry run pytest
    poetry run python -m app
"""


def place_task_files(project: Path, task: str) -> None:
    """Move the files of the model's task from _tasks/<task>/ to their places."""
    source = project / TASK_FILES / task
    for path in sorted(source.rglob("*")):
        if path.is_file():
            target = project / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)


def prune(project: Path, paths: Iterable[str]) -> None:
    """Remove these paths, which this render wrote."""
    for relative in paths:
        path = project / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def put_back(project: Path, paths: Iterable[str]) -> None:
    """Move what the pre-gen hook set aside back to where it was."""
    store = project / SET_ASIDE
    if not store.is_dir():
        return
    for relative in paths:
        kept = store / relative
        if kept.exists() or kept.is_symlink():
            kept.rename(project / relative)
    # Only the empty directories the pre-gen hook made are left: deepest first.
    for directory in sorted(store.rglob("*"), reverse=True):
        directory.rmdir()
    store.rmdir()


def main() -> None:
    answers = json.loads(ANSWERS)
    project = Path.cwd()
    paths = json.loads(answers["__pruned_paths"])
    place_task_files(project, answers["model_task"])
    prune(project, paths)
    put_back(project, paths)
    # cruft renders into temporary directories again on every update (it alone
    # sets _commit): the steps would point there.
    if "_commit" not in answers:
        print(
            NEXT_STEPS.format(project=project, quoted=shlex.quote(str(project))), end=""
        )


if __name__ == "__main__":
    main()
