"""What a user cannot switch off from outside: cookiecutter lets the command line
and a config file's default_context set every key of cookiecutter.json, the
private and derived ones too, and ``-f`` renders over whatever is there."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness import run_cli
from toolkit.render import DEFAULTS

ESCAPED_SLUG = "../../escaped"
DERIVED_HINT = (
    "it is derived from the other answers: leave it out of the command line and"
    " the config file"
)
SLUG_REFUSAL = (
    f"ERROR: {ESCAPED_SLUG!r} is not a valid project_slug: use lower-case letters,"
    " digits and single hyphens, starting with a letter, at most 63 characters"
    " (e.g. 'iris-classifier')"
)


def write_config(tmp_path: Path, default_context: dict[str, Any]) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "replay_dir": str(tmp_path / "replay"),
                "default_context": default_context,
            }
        )
    )
    return config


def output_dir_of(tmp_path: Path) -> Path:
    """Two levels under tmp_path, so that ESCAPED_SLUG lands in tmp_path."""
    return tmp_path / "not" / "yet"


@pytest.mark.parametrize(
    ("answers", "line"),
    [
        (["__validate=", f"project_slug={ESCAPED_SLUG}"], SLUG_REFUSAL),
        (
            ["__license_expression=GPL-3.0-or-later"],
            f"ERROR: 'GPL-3.0-or-later' is not a valid __license_expression:"
            f" {DERIVED_HINT}",
        ),
        (
            ["__image_tag=latest"],
            f"ERROR: 'latest' is not a valid __image_tag: {DERIVED_HINT}",
        ),
        (
            ['__pruned_paths=["../.."]'],
            f"ERROR: '[\"../..\"]' is not a valid __pruned_paths: {DERIVED_HINT}",
        ),
    ],
    ids=["validate-off", "license-expression", "image-tag", "pruned-paths"],
)
def test_private_value_on_the_command_line_is_refused_leaving_nothing(
    tmp_path: Path, answers: list[str], line: str
) -> None:
    config = write_config(tmp_path, {})
    result = run_cli(output_dir_of(tmp_path), *answers, config_file=config)
    assert (result.returncode, result.stdout + result.stderr) == (1, line + "\n")
    assert sorted(tmp_path.iterdir()) == [config]  # no output, no replay


def test_config_file_cannot_switch_the_check_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"__validate": "", "project_slug": ESCAPED_SLUG})
    result = run_cli(output_dir_of(tmp_path), config_file=config)
    assert (result.returncode, result.stdout + result.stderr) == (
        1,
        SLUG_REFUSAL + "\n",
    )
    assert sorted(tmp_path.iterdir()) == [config]  # no output, no replay


def test_config_file_cannot_skip_every_private_value_either(tmp_path: Path) -> None:
    """A value that is not a string is not rendered: with every private value so,
    nothing is rendered after the prompts, and the project directory's name is
    where the check runs, after cookiecutter has written its replay file."""
    private = dict.fromkeys(
        (key for key in DEFAULTS if key.startswith("__") and key != "__prompts__"),
        False,
    )
    config = write_config(tmp_path, private | {"project_slug": ESCAPED_SLUG})
    result = run_cli(output_dir_of(tmp_path), config_file=config)
    assert (result.returncode, result.stdout + result.stderr) == (
        1,
        SLUG_REFUSAL + "\n",
    )
    assert sorted(tmp_path.iterdir()) == [config, tmp_path / "replay"]


def test_derived_value_given_as_derived_renders(tmp_path: Path) -> None:
    """A derived value is checked, not forbidden: given as derived, it renders."""
    config = write_config(tmp_path, {"__license_expression": "LicenseRef-Proprietary"})
    output_dir = tmp_path / "output"
    result = run_cli(output_dir, "license=Proprietary", config_file=config)
    assert result.returncode == 0, result.stdout + result.stderr
    pyproject = (output_dir / "iris-classifier" / "pyproject.toml").read_text()
    assert 'license = "LicenseRef-Proprietary"' in pyproject


def link_out(tmp_path: Path, relative: str) -> tuple[Path, Path, Path]:
    """A project whose ``relative`` is a link to an empty directory outside it."""
    output_dir = tmp_path / "output"
    project = output_dir / "iris-classifier"
    outside = tmp_path / "outside"
    outside.mkdir()
    link = project / relative
    link.parent.mkdir(parents=True)
    link.symlink_to(outside, target_is_directory=True)
    return output_dir, project, outside


@pytest.mark.parametrize("relative", ["deploy/kubernetes", "deploy", "app"])
def test_overwrite_refuses_to_write_through_a_link_out_of_the_project(
    tmp_path: Path, relative: str
) -> None:
    output_dir, project, outside = link_out(tmp_path, relative)
    result = run_cli(output_dir, "-f", "include_kubernetes=yes")
    line = (
        f"ERROR: '{project / relative}' is not a valid path to write the project's"
        f" files to: it is a symbolic link out of the project, to '{outside}';"
        " replace it with a directory or file of the project's own, or render"
        " elsewhere"
    )
    assert (result.returncode, result.stdout + result.stderr) == (1, line + "\n")
    assert list(outside.iterdir()) == []
    # Only what the user had: the link and the directories above it.
    assert {path.relative_to(project) for path in project.rglob("*")} == {
        Path(relative),
        *Path(relative).parents,
    } - {Path(".")}


def test_overwrite_sets_aside_a_link_out_at_a_pruned_path(tmp_path: Path) -> None:
    """With the option off, nothing is written there: the link stays as it was."""
    output_dir, project, outside = link_out(tmp_path, "deploy/kubernetes")
    result = run_cli(output_dir, "-f", "include_kubernetes=no")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "deploy/kubernetes").readlink() == outside
    assert list(outside.iterdir()) == []
    assert (project / "app/main.py").is_file()


def test_overwrite_writes_through_a_link_inside_the_project(tmp_path: Path) -> None:
    output_dir = tmp_path / "output"
    project = output_dir / "iris-classifier"
    (project / "infra/kubernetes").mkdir(parents=True)
    (project / "deploy").mkdir()
    (project / "deploy/kubernetes").symlink_to(project / "infra/kubernetes")
    result = run_cli(output_dir, "-f", "include_kubernetes=yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "infra/kubernetes/kustomization.yaml").is_file()
