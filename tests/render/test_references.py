"""The rendered project points only at files it has.

A render has no `benchmarks/` and none of the template's own files: a comment,
docstring or README line that names one leaves its reader with nowhere to go.
"""

import re
from pathlib import Path

import pytest

from toolkit.render import bake

# A relative path with at least one directory and a file extension, as prose and
# comments write them: `app/batching.py`, `../kustomization.yaml`.
PATH = re.compile(
    r"(?<![\w/.:-])((?:\.{1,2}/)?(?:[\w.-]+/)+[\w-]+(?:\.[A-Za-z]\w*)+)\b"
)
# Paths the README asks the user to create, each where it says so.
TO_BE_CREATED = {
    "README.md": {"deploy/kubernetes/overlays/production/kustomization.yaml"},
    ".env.example": {"/path/to/model.onnx"},
}


def dangling_references(root: Path) -> list[str]:
    """Each path named in a text file of the render that resolves nowhere in it.

    A path counts as resolved from the render's root, from the naming file's
    directory (how kustomize and relative links read it), or from the
    Kubernetes base (how its README and comments name its parts).
    """
    dangling = []
    for file in sorted(path for path in root.rglob("*") if path.is_file()):
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        relative = file.relative_to(root).as_posix()
        for reference in PATH.findall(text):
            if reference in TO_BE_CREATED.get(relative, ()):
                continue
            bases = (root, file.parent, root / "deploy" / "kubernetes")
            if not any((base / reference).exists() for base in bases):
                dangling.append(f"{relative}: {reference}")
    return dangling


@pytest.mark.parametrize("model_task", ["classification", "regression"])
def test_every_path_a_rendered_file_names_is_in_the_render(
    output_dir: Path, model_task: str
) -> None:
    project = bake(
        output_dir,
        model_task=model_task,
        include_kubernetes=True,
        include_metrics=True,
        include_docker=True,
        include_github_actions=True,
    )
    assert dangling_references(project.path) == []
