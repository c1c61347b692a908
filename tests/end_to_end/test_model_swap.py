"""Each recipe of the generated README's "Use your own model", followed as written.

For each task and each framework the README names (scikit-learn, XGBoost,
LightGBM, PyTorch), a fresh render gets the recipe's packages (its
``poetry add --group train ...`` line, run with Poetry), its mypy overrides (its
TOML block, in place of pyproject.toml's), and its Python block in
``app/train.py``: each definition replaces the one of the same name, new ones
and the imports are added, then the README's own ``ruff check --fix`` and
``ruff format`` lines drop the imports nothing uses and format the file.
``Features`` is written for the recipe's data set, as the README's step 3 asks
(by this test, formatted with ruff). Then step 4's commands, as the README
writes them: ``poetry install --with train``, ``python -m app.train``, the
whole generated suite (``tests/test_train.py``'s parity test must run, not
skip), ruff and mypy pass with no other edit, and the served ``/predict``,
``/predict/batch`` and ``/v2`` answers equal the framework's own predictions on
every row of the recipe's data, within the generated parity test's bounds.

The one departure: PyTorch is installed with pip, ``pip install torch==2.13.0
onnxscript``, into the render's virtualenv instead of ``poetry add --group train
torch onnxscript``. The default torch wheels for Linux pull several gigabytes
of CUDA packages, too much for CI; pip finds the CPU-only 2.13.0 wheel that
this suite's machines provide, which Poetry does not see. Without it the
PyTorch tests fail, saying so: they never skip.

The renders of a task share one virtualenv (installed once per task, the
train group included, and linked as each render's ``.venv``), so each swap pays
only for its own packages.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.harness import assert_suite_passed
from toolkit.render import BakedProject, bake, poetry_install, use_package_index
from toolkit.serve import http, serving_app

FRAMEWORKS = ("scikit-learn", "XGBoost", "LightGBM", "PyTorch")
TORCH = ("torch==2.13.0", "onnxscript")
# How close the service's answers must be to the framework's own: the
# generated parity test's bounds. ONNX Runtime computes in float32.
PROBABILITY_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-5
# The rows served one by one on /predict (all of them go to the batch routes).
SINGLE_ROWS = 12

# Run by the render's Python: the recipe's data, fitted by the recipe's code,
# and the framework's own predictions for every row.
FRAMEWORK_PREDICTIONS = """
import json
from app import train
dataset = train.load_data()
fitted = train.fit(dataset)
if hasattr(train, "predict_proba"):
    predicted = train.predict_proba(fitted, dataset.data)
else:
    predicted = train.predict(fitted, dataset.data)
print(json.dumps([dataset.data.tolist(), predicted.tolist()]))
"""

# --- the request body of each recipe's data set (step 3 of the README) --------

BREAST_CANCER = [
    f"{kind}_{name}"
    for kind in ("mean", "error", "worst")
    for name in (
        "radius",
        "texture",
        "perimeter",
        "area",
        "smoothness",
        "compactness",
        "concavity",
        "concave_points",
        "symmetry",
        "fractal_dimension",
    )
]
WINE = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280_od315_of_diluted_wines",
    "proline",
]


@dataclass(frozen=True)
class DataSet:
    description: str  # the docstring of Features
    names: list[str]
    example: list[float]  # a row of the data, for the docs


# By task, and the scikit-learn function that loads the data.
DATA_SETS = {
    ("classification", "load_wine"): DataSet(
        "One wine's chemical analysis.",
        WINE,
        [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050],
    ),
    ("classification", "load_breast_cancer"): DataSet(
        "Measurements of the cell nuclei in one breast mass.",
        BREAST_CANCER,
        [
            *(17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419),
            *(0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373),
            *(0.01587, 0.03003, 0.006193, 25.38, 17.33, 184.6, 2019.0, 0.1622),
            *(0.6656, 0.7119, 0.2654, 0.4601, 0.1189),
        ],
    ),
    # The wine data's first column, alcohol, is the regressors' target.
    ("regression", "load_wine"): DataSet(
        "One wine's chemical analysis, but for its alcohol content.",
        WINE[1:],
        [1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050],
    ),
}


def features_class(data_set: DataSet) -> str:
    """``Features`` for a data set: every column a bounded, finite float."""
    example = ", ".join(
        f'"{name}": {float(value)!r}'
        for name, value in zip(data_set.names, data_set.example, strict=True)
    )
    fields = "\n".join(f"    {name}: Measurement" for name in data_set.names)
    return (
        "# Each measurement is finite, non-negative and at most 10,000.\n"
        "Measurement = Annotated[float, Field(ge=0, le=10_000, strict=True,"
        " allow_inf_nan=False)]\n\n\n"
        "class Features(BaseModel):\n"
        f'    """{data_set.description}"""\n\n'
        "    model_config = ConfigDict(\n"
        '        extra="forbid", json_schema_extra={"examples": [{' + example + "}]}\n"
        "    )\n\n"
        f"{fields}\n\n\n"
    )


# --- reading a recipe from the README -----------------------------------------


@dataclass(frozen=True)
class Recipe:
    framework: str
    commands: list[str]  # the lines of its shell blocks
    overrides: str | None  # its TOML block: pyproject.toml's mypy overrides
    code: str  # its Python block


def readme_section(project: BakedProject, heading: str, level: str = "###") -> str:
    """The text under a heading of the README, up to the next of its level."""
    text = project.read("README.md")
    marker = f"\n{level} {heading}\n"
    assert text.count(marker) == 1, f"expected one {marker.strip()!r}"
    section = text.split(marker)[1]
    return re.split(rf"\n#{{2,{len(level)}}} ", section)[0]


def code_blocks(section: str, language: str) -> list[str]:
    return [
        textwrap.dedent(block)
        for block in re.findall(rf"```{language}\n(.*?)```", section, re.S)
    ]


def shell_lines(block: str) -> list[str]:
    """The commands of a shell block, without their comments."""
    lines = (line.split("#")[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def readme_recipe(project: BakedProject, framework: str) -> Recipe:
    section = readme_section(project, framework)
    (code,) = code_blocks(section, "python")
    overrides = code_blocks(section, "toml")
    assert len(overrides) <= 1, overrides
    commands = [
        line for block in code_blocks(section, "bash") for line in shell_lines(block)
    ]
    return Recipe(framework, commands, overrides[0] if overrides else None, code)


def step_commands(project: BakedProject, command: str) -> list[str]:
    """The commands of the one shell block of the steps that has ``command``."""
    steps = readme_section(project, "Use your own model", "##")
    blocks = [shell_lines(block) for block in code_blocks(steps, "bash")]
    found = [lines for lines in blocks if any(command in line for line in lines)]
    assert len(found) == 1, blocks
    return [part.strip() for line in found[0] for part in line.split("&&")]


# --- following a recipe ---------------------------------------------------------


def poetry_command(bin_dir: Path, line: str) -> list[str]:
    """A ``poetry ...`` line as the command to run: ``poetry run X`` runs X from
    the virtualenv, and Poetry itself is this interpreter's."""
    words = shlex.split(line)
    assert words[0] == "poetry", line
    if words[1] == "run":
        return [str(bin_dir / words[2]), *words[3:]]
    return [sys.executable, "-m", "poetry", *words[1:]]


def add_packages(project: BakedProject, bin_dir: Path, recipe: Recipe) -> None:
    """Step 1: the recipe's ``poetry add`` lines (for PyTorch, pip; see above)."""
    if recipe.framework != "scikit-learn":  # already in the train group
        assert recipe.commands, f"the {recipe.framework} recipe adds no packages"
    for line in recipe.commands:
        words = shlex.split(line)
        assert words[:4] == ["poetry", "add", "--group", "train"], line
        if recipe.framework == "PyTorch":
            assert words[4:] == ["torch", "onnxscript"], line
            install_torch(project, bin_dir)
        else:
            project.run(sys.executable, "-m", "poetry", *words[1:], timeout=900)


# Run by the render's Python: the distributions that provide each module.
MODULE_DISTRIBUTIONS = """
import json
from importlib.metadata import packages_distributions
print(json.dumps(packages_distributions()))
"""


def assert_imports_declared(
    project: BakedProject, bin_dir: Path, recipe: Recipe
) -> None:
    """Each package the recipe's code imports, once installed, is one the
    project declares (or the recipe adds): the renders of a task share a
    virtualenv, where another recipe's packages may be installed too."""
    pyproject = project.pyproject()
    declared = {
        canonicalize_name(Requirement(requirement).name)
        for requirement in (
            *pyproject["project"]["dependencies"],
            *pyproject["dependency-groups"]["train"],
            *(word for line in recipe.commands for word in shlex.split(line)[4:]),
        )
    }
    result = project.run(bin_dir / "python", "-c", MODULE_DISTRIBUTIONS)
    providers: dict[str, list[str]] = json.loads(result.stdout)
    for node in ast.parse(recipe.code).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [
                alias.name for alias in node.names if isinstance(node, ast.Import)
            ]
            for name in names:
                module = (name or "").split(".")[0]
                found = {canonicalize_name(d) for d in providers.get(module, [])}
                assert found & declared, f"{module} ({found}) is not declared"


def install_torch(project: BakedProject, bin_dir: Path) -> None:
    command = [bin_dir / "python", "-m", "pip", "install", "--quiet", *TORCH]
    result = subprocess.run(
        [str(part) for part in command],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, (
        f"cannot install the PyTorch recipe's packages ({' '.join(TORCH)}) with"
        f" pip: this test needs the CPU-only torch 2.13.0 wheel.\n{result.stderr}"
    )


def replace_overrides(project: BakedProject, recipe: Recipe) -> None:
    """Step 1: the recipe's mypy overrides in place of pyproject.toml's."""
    path = project.path / "pyproject.toml"
    pattern = re.compile(
        r"^\[\[tool\.mypy\.overrides\]\]\nmodule = \[.*?\]\n"
        r"ignore_missing_imports = true\n",
        re.M,
    )
    text = path.read_text()
    assert len(pattern.findall(text)) == 1, text
    if recipe.overrides is not None:
        assert pattern.fullmatch(recipe.overrides), recipe.overrides
        text = pattern.sub(lambda _: recipe.overrides or "", text)
    path.write_text(text)


def defined_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def paste_code(project: BakedProject, recipe: Recipe) -> list[str]:
    """Step 2: each definition of the recipe replaces its namesake in train.py;
    new constants go after the last constant, new classes before the first
    function, and the imports at the top. Returns the names replaced."""
    path = project.path / "app" / "train.py"
    source = path.read_text()
    code = recipe.code
    example = ast.parse(code)
    module = ast.parse(source)

    definitions = {
        name: ast.get_source_segment(code, node, padded=True)
        for node in example.body
        if (name := defined_name(node)) is not None
    }
    imports = [
        ast.get_source_segment(code, node)
        for node in example.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert len(definitions) + len(imports) == len(example.body), code

    lines = source.splitlines(keepends=True)
    existing = {
        name: node for node in module.body if (name := defined_name(node)) is not None
    }
    replaced = [name for name in definitions if name in existing]
    new = [name for name in definitions if name not in existing]
    # Edit from the bottom up, so that earlier line numbers stay valid.
    edits: list[tuple[int, int, str]] = [
        (
            _first_line(existing[name]),
            existing[name].end_lineno or 0,
            definitions[name] or "",
        )
        for name in replaced
    ]
    last_constant = max(
        node.end_lineno or 0
        for node in module.body
        if isinstance(node, ast.Assign) and node.col_offset == 0
    )
    first_function = min(
        _first_line(node) for node in module.body if isinstance(node, ast.FunctionDef)
    )
    for name in new:
        node = next(n for n in example.body if defined_name(n) == name)
        if isinstance(node, ast.ClassDef):
            edits.append(
                (first_function, first_function - 1, f"{definitions[name]}\n\n\n")
            )
        else:
            edits.append((last_constant + 1, last_constant, definitions[name] or ""))
    first_import = min(
        node.lineno
        for node in module.body
        if isinstance(node, ast.Import)
        or (isinstance(node, ast.ImportFrom) and node.module != "__future__")
    )
    edits.append((first_import, first_import - 1, "\n".join(map(str, imports))))
    for start, end, text in sorted(edits, key=lambda edit: edit[0], reverse=True):
        lines[start - 1 : end] = [f"{text}\n"]
    path.write_text("".join(lines))
    return replaced


def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def swap_features(project: BakedProject, bin_dir: Path, data_set: DataSet) -> None:
    """Step 3: ``Features`` lists the recipe's data set's columns, in order,
    formatted by ruff as its author would."""
    path = project.path / "app" / "model.py"
    source = path.read_text()
    start = source.index("class Features(BaseModel):")
    # The sample's own type for its fields goes with it.
    for sample_type in ("# Each measurement is a length in centimetres",):
        if sample_type in source:
            start = source.index(sample_type)
    end = source.index("class Prediction(BaseModel):")
    path.write_text(source[:start] + features_class(data_set) + source[end:])
    project.run(bin_dir / "ruff", "format", "--no-cache", path)


def recipe_data_set(task: str, recipe: Recipe) -> DataSet:
    (loader,) = re.findall(r"^from sklearn\.datasets import (\w+)$", recipe.code, re.M)
    return DATA_SETS[task, loader]


# --- what the swapped project must do -------------------------------------------


def train_and_test(project: BakedProject, bin_dir: Path) -> None:
    """Step 4's commands; the suite must run the parity test, not skip it."""
    commands = step_commands(project, "python -m app.train")
    assert commands == [
        "poetry install --with train",
        "poetry run python -m app.train",
        "poetry run pytest",
        "poetry run ruff check .",
        "poetry run ruff format --check .",
        "poetry run mypy app tests",
    ], commands
    for line in commands:
        result = project.run(*poetry_command(bin_dir, line), timeout=900)
        if line == "poetry run pytest":  # none skipped: the parity test ran too
            assert_suite_passed(result.stdout, at_least=50)


def framework_predictions(
    project: BakedProject, bin_dir: Path
) -> tuple[list[list[float]], list[Any]]:
    result = project.run(bin_dir / "python", "-c", FRAMEWORK_PREDICTIONS)
    rows, predicted = json.loads(result.stdout.strip().splitlines()[-1])
    return rows, predicted


def assert_served_as_predicted(
    url: str, task: str, rows: list[list[float]], expected: list[Any]
) -> None:
    status, info = http("GET", f"{url}/model")
    assert status == 200, info
    names = info["feature_names"]
    bodies = [dict(zip(names, row, strict=True)) for row in rows]
    picked = range(0, len(rows), max(1, len(rows) // SINGLE_ROWS))

    singles = []
    for index in picked:
        status, answer = http("POST", f"{url}/predict", bodies[index])
        assert status == 200, answer
        singles.append(answer)
    status, batch = http("POST", f"{url}/predict/batch", {"instances": bodies})
    assert status == 200, batch
    infer = {
        "inputs": [
            {
                "name": "features",
                "shape": [len(rows), len(names)],
                "datatype": "FP32",
                "data": [value for row in rows for value in row],
            }
        ]
    }
    path = f"{url}/v2/models/{info['name']}/infer"
    status, tensors = http("POST", path, infer, timeout=30)
    assert status == 200, tensors
    outputs = {output["name"]: output for output in tensors["outputs"]}

    if task == "classification":
        classes = info["classes"]

        def probabilities(answer: dict[str, Any]) -> list[float]:
            return [answer["probabilities"][name] for name in classes]

        served = {
            "/predict": [probabilities(a) for a in singles],
            "/predict/batch": [probabilities(a) for a in batch["predictions"]],
            "/v2": _rows(outputs["probabilities"]["data"], len(classes)),
        }
        wanted = {
            "/predict": [expected[i] for i in picked],
            "/predict/batch": expected,
            "/v2": expected,
        }
        labels = {
            "/predict": [a["label"] for a in singles],
            "/predict/batch": [a["label"] for a in batch["predictions"]],
            "/v2": outputs["label"]["data"],
        }
        for route, found in served.items():
            assert _largest_difference(found, wanted[route]) <= PROBABILITY_TOLERANCE, (
                route
            )
            best = [classes[row.index(max(row))] for row in wanted[route]]
            assert labels[route] == best, route
    else:
        scale = max(abs(value) for value in expected)
        served = {
            "/predict": [[a["value"]] for a in singles],
            "/predict/batch": [[a["value"]] for a in batch["predictions"]],
            "/v2": _rows(outputs["value"]["data"], 1),
        }
        wanted = {
            "/predict": [[expected[i]] for i in picked],
            "/predict/batch": [[value] for value in expected],
            "/v2": [[value] for value in expected],
        }
        for route, found in served.items():
            difference = _largest_difference(found, wanted[route])
            assert difference <= RELATIVE_TOLERANCE * scale, route


def _rows(flat: list[float], width: int) -> list[list[float]]:
    return [flat[start : start + width] for start in range(0, len(flat), width)]


def _largest_difference(found: list[list[float]], wanted: list[list[float]]) -> float:
    assert len(found) == len(wanted)
    return max(
        abs(a - b)
        for row, other in zip(found, wanted, strict=True)
        for a, b in zip(row, other, strict=True)
    )


# --- the tests --------------------------------------------------------------------


@pytest.fixture(scope="module", params=["classification", "regression"])
def task_install(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """One render of the task installed with the dev and train groups: its
    virtualenv serves every swap of that task."""
    task = request.param
    project = bake(tmp_path_factory.mktemp(f"{task}-install"), model_task=task)
    return task, poetry_install(project, "--with", "train").parent


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_readme_recipe_for_each_framework_swaps_the_model(
    task_install: tuple[str, Path], framework: str, tmp_path: Path
) -> None:
    task, venv = task_install
    project = bake(tmp_path / "render", model_task=task)
    (project.path / ".venv").symlink_to(venv, target_is_directory=True)
    bin_dir = project.path / ".venv" / "bin"
    use_package_index(project)
    before = (project.path / "app" / "model.onnx").read_bytes()

    recipe = readme_recipe(project, framework)
    add_packages(project, bin_dir, recipe)
    replace_overrides(project, recipe)
    replaced = paste_code(project, recipe)
    assert {"load_data", "build_pipeline", "MODEL_NAME", "MODEL_VERSION"} <= set(
        replaced
    ), replaced
    for line in step_commands(project, "ruff check --fix"):
        project.run(*poetry_command(bin_dir, line))
    swap_features(project, bin_dir, recipe_data_set(task, recipe))

    train_and_test(project, bin_dir)
    assert_imports_declared(project, bin_dir, recipe)
    assert (project.path / "app" / "model.onnx").read_bytes() != before
    rows, expected = framework_predictions(project, bin_dir)
    with serving_app(bin_dir / "python", project.path, tmp_path / "server.log") as url:
        status, info = http("GET", f"{url}/model")
        assert status == 200, info
        name = re.search(r'^MODEL_NAME = "(.*)"$', recipe.code, re.M)
        assert name, recipe.code
        assert info["name"] == name.group(1)
        assert info["feature_names"] == recipe_data_set(task, recipe).names
        assert_served_as_predicted(url, task, rows, expected)
