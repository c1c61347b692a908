"""Finish the rendered project: write the chosen LICENSE and prune what is off.

Runs inside the new project directory. Needs no network and no Poetry.
Cookiecutter starts a fresh interpreter for each hook, so this one uses os.path:
importing pathlib would add about a seventh to its run time.
"""

import json
import os
import shutil
from collections.abc import Iterable, Mapping

# The answers, rendered in by cookiecutter. A raw string keeps JSON's escapes intact.
ANSWERS = r"""{{ cookiecutter | tojson }}"""

LICENSES_DIR = "_licenses"
NO_LICENSE = "Proprietary"

# Option name -> files and directories that exist only when the option is on.
OPTIONAL_PATHS: dict[str, tuple[str, ...]] = {
    "include_docker": ("Dockerfile", ".dockerignore"),
    "include_github_actions": (".github",),
    "include_metrics": ("app/metrics.py", "tests/test_metrics.py"),
    "include_kubernetes": ("deploy",),
}


def write_license(project: str, license_name: str) -> None:
    """Move the chosen license text to LICENSE and drop the other texts."""
    licenses = os.path.join(project, LICENSES_DIR)
    if license_name != NO_LICENSE:
        os.rename(
            os.path.join(licenses, license_name), os.path.join(project, "LICENSE")
        )
    shutil.rmtree(licenses)


def paths_to_prune(answers: Mapping[str, object]) -> Iterable[str]:
    for option, paths in OPTIONAL_PATHS.items():
        if not answers[option]:
            yield from paths


def prune(project: str, paths: Iterable[str]) -> None:
    for relative in paths:
        path = os.path.join(project, relative)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


def main() -> None:
    answers = json.loads(ANSWERS)
    project = os.getcwd()
    write_license(project, answers["license"])
    prune(project, paths_to_prune(answers))


if __name__ == "__main__":
    main()
