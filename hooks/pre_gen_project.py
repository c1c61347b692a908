"""Set aside the files of the user's that this render would replace, then prune.

Runs in the project directory once cookiecutter has made it (or, with -f, found
it) and before it writes any file; the answers are already valid
(local_extensions.py). A path that the post-gen hook will prune, if it exists
now, is the user's: it moves to SET_ASIDE, and the post-gen hook moves it back,
so that re-rendering over a project never replaces or deletes it.

Where cookiecutter does not say where the project goes (``cruft create``),
local_extensions.py cannot see the user's files before this hook: a symbolic
link that would take a write out of the project is refused here too.
"""

import json
import sys
from collections.abc import Iterable
from pathlib import Path

# The answers, rendered in by cookiecutter. A raw string keeps JSON's escapes intact.
ANSWERS = r"""{{ cookiecutter | tojson }}"""
# The paths this render writes through (local_extensions.written_paths).
WRITTEN = r"""{{ cookiecutter | written_paths }}"""

SET_ASIDE = ".cookiecutter-set-aside"


class LeftoverError(Exception):
    """An earlier render stopped before it put the user's files back."""


class LinkOutError(Exception):
    """A symbolic link of the user's would take the render's writes elsewhere."""


def refuse_links_out(project: Path, paths: Iterable[str]) -> None:
    """Refuse a symbolic link that would take the render's writes out of the project."""
    root = project.resolve()
    for relative in paths:
        path = project / relative
        target = path.resolve()
        if not target.is_relative_to(root):
            raise LinkOutError(
                f"ERROR: {str(path)!r} is not a valid path to write the project's"
                f" files to: it is a symbolic link out of the project, to '{target}';"
                " replace it with a directory or file of the project's own, or"
                " render elsewhere"
            )


def set_aside(project: Path, paths: Iterable[str]) -> None:
    """Move each of these paths that exists into SET_ASIDE, keeping its place."""
    store = project / SET_ASIDE
    if store.exists() or store.is_symlink():
        raise LeftoverError(
            f"ERROR: {str(project)!r} is not a valid output directory: {SET_ASIDE}/"
            " in it holds files an earlier render did not put back; move them back"
            " to where they were, then remove it"
        )
    for relative in paths:
        path = project / relative
        if path.exists() or path.is_symlink():
            kept = store / relative
            kept.parent.mkdir(parents=True, exist_ok=True)
            path.rename(kept)


def main() -> None:
    answers = json.loads(ANSWERS)
    try:
        refuse_links_out(Path.cwd(), json.loads(WRITTEN))
        set_aside(Path.cwd(), json.loads(answers["__pruned_paths"]))
    except (LinkOutError, LeftoverError) as error:
        print(error, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
