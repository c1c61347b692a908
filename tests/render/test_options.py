"""Each optional feature: its files when on, and no trace of it when off."""

import re
from pathlib import Path

import pytest

import local_extensions as rules
from tests.harness import MENTIONS, assert_ruff_clean
from toolkit.render import DEFAULTS, BakedProject, bake

OPTIONS = [key for key, value in DEFAULTS.items() if isinstance(value, bool)]
DEFAULT_OFF = {"include_kubernetes"}


def mentions(project: BakedProject, pattern: str) -> list[str]:
    found = []
    for relative in project.text_files():
        for number, line in enumerate(project.read(relative).splitlines(), 1):
            if re.search(pattern, line, re.IGNORECASE):
                found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_every_option_is_covered_by_this_module() -> None:
    assert set(OPTIONS) == set(MENTIONS) == set(rules.OPTIONAL_PATHS)
    assert {option for option in OPTIONS if not DEFAULTS[option]} == DEFAULT_OFF


@pytest.mark.parametrize("option", OPTIONS)
def test_option_on_renders_its_files(output_dir: Path, option: str) -> None:
    project = bake(output_dir, **{option: True})
    for path in rules.OPTIONAL_PATHS[option]:
        assert (project.path / path).exists(), path
    assert mentions(project, MENTIONS[option])


@pytest.mark.parametrize("option", OPTIONS)
def test_option_off_leaves_no_file_or_mention(output_dir: Path, option: str) -> None:
    project = bake(output_dir, **{option: False})
    for path in rules.OPTIONAL_PATHS[option]:
        assert not (project.path / path).exists(), path
    assert mentions(project, MENTIONS[option]) == []
    assert_ruff_clean(project)


def test_all_options_off_renders_the_bare_service(output_dir: Path) -> None:
    project = bake(output_dir, **dict.fromkeys(OPTIONS, False))
    for pattern in MENTIONS.values():
        assert mentions(project, pattern) == []
    assert "prometheus" not in " ".join(project.pyproject()["project"]["dependencies"])
