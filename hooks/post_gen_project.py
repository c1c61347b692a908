"""Finish the rendered project: prune what is off, then say what to do next.

Runs inside the new project directory. Needs no network and no Poetry.
Removes only what this render wrote: the pre-gen hook set aside whatever was at
a pruned path before, and this hook puts it back.
Cookiecutter starts a fresh interpreter for each hook, so this one uses os.path:
importing pathlib would add about a seventh to its run time.
"""

import json
import os
import shlex
import shutil
from collections.abc import Iterable

# The answers, rendered in by cookiecutter. A raw string keeps JSON's escapes intact.
ANSWERS = r"""{{ cookiecutter | tojson }}"""

SET_ASIDE = ".cookiecutter-set-aside"  # as in pre_gen_project.py
NEXT_STEPS = """
Created {project}. Next:

    cd {quoted}
    poetry install
    poetry run pytest
    poetry run python -m app
"""


def prune(project: str, paths: Iterable[str]) -> None:
    """Remove these paths, which this render wrote."""
    for relative in paths:
        path = os.path.join(project, relative)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


def put_back(project: str, paths: Iterable[str]) -> None:
    """Move what the pre-gen hook set aside back to where it was."""
    store = os.path.join(project, SET_ASIDE)
    if not os.path.isdir(store):
        return
    for relative in paths:
        kept = os.path.join(store, relative)
        if os.path.lexists(kept):
            os.rename(kept, os.path.join(project, relative))
    for directory, _, _ in sorted(os.walk(store), reverse=True):
        os.rmdir(directory)  # only the empty directories the pre-gen hook made


def main() -> None:
    answers = json.loads(ANSWERS)
    project = os.getcwd()
    paths = json.loads(answers["__pruned_paths"])
    prune(project, paths)
    put_back(project, paths)
    # cruft renders into temporary directories again on every update (it alone
    # sets _commit): the steps would point there.
    if "_commit" not in answers:
        print(NEXT_STEPS.format(project=project, quoted=shlex.quote(project)), end="")


if __name__ == "__main__":
    main()
