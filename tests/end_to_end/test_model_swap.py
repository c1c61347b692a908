"""A user's model swap, done as the generated README's "Use your own model" says.

A default render gets a different classifier (a random forest) trained on
another data set that ships with scikit-learn (wine: 13 features, 3 classes):
its training code comes from the README's own example, and the artifact and
``Features`` are replaced. Then the whole generated suite, ruff and mypy must
pass with no other edit.
"""

import ast
import re
import textwrap
from pathlib import Path

from tests.harness import BakedProject, bake, http, serving_app

WINE_FEATURES = '''\
# Each measurement is one of the wine data's chemical analyses: finite,
# non-negative and at most 10,000.
Measurement = Annotated[float, Field(ge=0, le=10_000, strict=True, allow_inf_nan=False)]


class Features(BaseModel):
    """One wine's chemical analysis."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "alcohol": 13.2,
                    "malic_acid": 1.78,
                    "ash": 2.14,
                    "alcalinity_of_ash": 11.2,
                    "magnesium": 100.0,
                    "total_phenols": 2.65,
                    "flavanoids": 2.76,
                    "nonflavanoid_phenols": 0.26,
                    "proanthocyanins": 1.28,
                    "color_intensity": 4.38,
                    "hue": 1.05,
                    "od280_od315_of_diluted_wines": 3.4,
                    "proline": 1050.0,
                }
            ]
        },
    )

    alcohol: Measurement
    malic_acid: Measurement
    ash: Measurement
    alcalinity_of_ash: Measurement
    magnesium: Measurement
    total_phenols: Measurement
    flavanoids: Measurement
    nonflavanoid_phenols: Measurement
    proanthocyanins: Measurement
    color_intensity: Measurement
    hue: Measurement
    od280_od315_of_diluted_wines: Measurement
    proline: Measurement


'''


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once"
    return text.replace(old, new)


def readme_training_example(project: BakedProject) -> str:
    """The Python block of the README's "A scikit-learn pipeline" steps."""
    section = project.read("README.md").split("### A scikit-learn pipeline")[1]
    (block,) = re.findall(r"```python\n(.*?)```", section.split("###")[0], re.S)
    return textwrap.dedent(block)


def swap_training(project: BakedProject) -> None:
    """Step 1: load_data, build_pipeline, the name and the imports of train.py."""
    path = project.path / "app" / "train.py"
    source = path.read_text()
    code = readme_training_example(project)
    example = ast.parse(code)
    functions = {
        node.name: ast.get_source_segment(code, node)
        for node in example.body
        if isinstance(node, ast.FunctionDef)
    }
    assert set(functions) == {"load_data", "build_pipeline"}, functions
    lines = source.splitlines(keepends=True)
    # Replace from the bottom up, so that earlier line numbers stay valid.
    targets = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name in functions
    ]
    for node in sorted(targets, key=lambda n: n.lineno, reverse=True):
        assert node.end_lineno is not None
        lines[node.lineno - 1 : node.end_lineno] = [f"{functions[node.name]}\n"]
    source = "".join(lines)
    imports = [
        ast.get_source_segment(code, node)
        for node in example.body
        if isinstance(node, ast.ImportFrom)
    ]
    assert imports == [
        "from sklearn.datasets import load_wine",
        "from sklearn.ensemble import RandomForestClassifier",
    ], imports
    # The imports the example needs, in place of those it no longer uses.
    source = replace_once(source, "from sklearn.datasets import load_iris", imports[0])
    source = replace_once(
        source, "from sklearn.linear_model import LogisticRegression", imports[1]
    )
    source = replace_once(
        source, "from sklearn.preprocessing import StandardScaler\n", ""
    )
    source = re.sub(r'MODEL_NAME = ".*"', 'MODEL_NAME = "wine-random-forest"', source)
    source = re.sub(r'MODEL_VERSION = ".*"', 'MODEL_VERSION = "1.0.0"', source)
    path.write_text(source)


def swap_features(project: BakedProject) -> None:
    """Step 2: Features lists the wine data's columns, in order."""
    path = project.path / "app" / "model.py"
    source = path.read_text()
    start = source.index("# Each measurement is a length in centimetres")
    end = source.index("class Prediction(BaseModel):")
    path.write_text(source[:start] + WINE_FEATURES + source[end:])


def test_a_model_swapped_as_the_readme_says_passes_the_generated_suite(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    # Its virtualenv has the dev and train groups, as the README asks for.
    _, bin_dir = dev_install
    project = bake(tmp_path / "render")
    before = (project.path / "app" / "model.onnx").read_bytes()
    swap_training(project)
    swap_features(project)
    python = bin_dir / "python"
    # Step 3. The installed venv imports `app` from the working directory first.
    project.run(python, "-m", "app.train")
    assert (project.path / "app" / "model.onnx").read_bytes() != before
    result = project.run(python, "-m", "pytest", "-p", "no:cacheprovider")
    summary = result.stdout.strip().splitlines()[-1]
    assert "failed" not in summary, result.stdout
    assert "skipped" not in summary, result.stdout  # the parity test ran too
    passed = re.search(r"(\d+) passed", summary)
    assert passed, summary
    assert int(passed.group(1)) >= 50, summary
    project.run(bin_dir / "ruff", "check", "--no-cache", ".")
    project.run(bin_dir / "ruff", "format", "--no-cache", "--check", ".")
    project.run(bin_dir / "mypy", "--cache-dir", "/dev/null", "app", "tests")
    with serving_app(python, project.path, tmp_path / "server.log") as url:
        status, body = http("GET", f"{url}/model")
        assert status == 200, body
        assert (body["name"], len(body["feature_names"])) == ("wine-random-forest", 13)
        assert body["classes"] == ["class_0", "class_1", "class_2"]
