"""Figures the generated README quotes from the code agree with the code."""

import ast
import json
import re
from pathlib import Path

import pytest

import local_extensions as rules
from toolkit.render import BakedProject, bake

# A figure in milliseconds as the README writes it: "2 ms", "0.5 ms".
MILLISECONDS = re.compile(r"(\d+(?:\.\d+)?) ms\b")


def module_constant(project: BakedProject, relative: str, name: str) -> float:
    """The value of a module-level constant of a rendered file."""
    for node in ast.parse(project.read(relative)).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == [name]
            and isinstance(node.value, ast.Constant)
        ):
            return float(node.value.value)
    raise AssertionError(f"no constant {name} in {relative}")


def test_readme_quotes_the_batchers_thread_threshold_as_the_code_sets_it(
    default_project: BakedProject,
) -> None:
    seconds = module_constant(default_project, "app/batching.py", "LOOP_RUN_SECONDS")
    readme = default_project.read("README.md")
    paragraphs = [
        " ".join(paragraph.split())
        for paragraph in readme.split("\n\n")
        if "LOOP_RUN_SECONDS" in paragraph
    ]
    # The batching section, and "Use your own model" on slow models.
    own_model = readme.split("## Use your own model")[1].split("\n## ")[0]
    assert "LOOP_RUN_SECONDS" in own_model
    assert len(paragraphs) >= 2, paragraphs
    for paragraph in paragraphs:
        assert "half a millisecond" not in paragraph, paragraph
        figures = [float(figure) for figure in MILLISECONDS.findall(paragraph)]
        assert figures == [seconds * 1000], paragraph


# A list of numbers as the README writes a row of features.
NUMBER_LIST = re.compile(r"\[(-?\d+(?:\.\d+)?(?:, -?\d+(?:\.\d+)?)+)\]")


@pytest.mark.parametrize("model_task", ["classification", "regression"])
def test_every_row_the_readme_sends_is_the_models_own_example(
    output_dir: Path, model_task: str
) -> None:
    project = bake(output_dir, model_task=model_task)
    example = rules.features_example(project.path / "app" / "model.py")
    readme = project.read("README.md")
    assert json.dumps(example) in readme
    rows = [
        [float(value) for value in found.split(", ")]
        for found in NUMBER_LIST.findall(readme)
        if found.count(",") == len(example) - 1
    ]
    # The /v2 request with curl, and with NVIDIA's client.
    assert len(rows) >= 2, rows
    assert all(row == list(example.values()) for row in rows), rows
