"""Figures the generated README quotes from the code agree with the code."""

import ast
import re

from toolkit.render import BakedProject

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
