"""Finish the rendered project: write the chosen LICENSE and prune what is off.

Runs inside the new project directory. Needs no network and no Poetry.
"""

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

# The answers, rendered in by cookiecutter. A raw string keeps JSON's escapes intact.
ANSWERS = r"""{{ cookiecutter | tojson }}"""

LICENSES_DIR = Path("_licenses")
NO_LICENSE = "Proprietary"

# Option name -> files and directories that exist only when the option is on.
OPTIONAL_PATHS: dict[str, tuple[str, ...]] = {
    "include_docker": ("Dockerfile", ".dockerignore"),
    "include_github_actions": (".github",),
    "include_metrics": ("app/metrics.py", "tests/test_metrics.py"),
    "include_kubernetes": ("deploy",),
}


def write_license(project: Path, license_name: str) -> None:
    """Move the chosen license text to LICENSE and drop the other texts."""
    licenses = project / LICENSES_DIR
    if license_name != NO_LICENSE:
        (licenses / license_name).rename(project / "LICENSE")
    shutil.rmtree(licenses)


def paths_to_prune(answers: Mapping[str, object]) -> Iterable[str]:
    for option, paths in OPTIONAL_PATHS.items():
        if not answers[option]:
            yield from paths


def prune(project: Path, paths: Iterable[str]) -> None:
    for relative in paths:
        path = project / relative
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def main() -> None:
    answers = json.loads(ANSWERS)
    project = Path.cwd()
    write_license(project, answers["license"])
    prune(project, paths_to_prune(answers))


if __name__ == "__main__":
    main()
