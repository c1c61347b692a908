"""What the template renders, read without installing anything."""

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from tests.bake import (
    DEFAULTS,
    TEMPLATE,
    BakedProject,
    bake,
    run_cli,
    template_residue,
)

DEFAULT_FILES = [
    ".dockerignore",
    ".env.example",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".pre-commit-config.yaml",
    "Dockerfile",
    "LICENSE",
    "README.md",
    "app/__init__.py",
    "app/__main__.py",
    "app/config.py",
    "app/inference_protocol.py",
    "app/logs.py",
    "app/main.py",
    "app/metrics.py",
    "app/middleware.py",
    "app/model.json",
    "app/model.py",
    "app/schemas.py",
    "app/train.py",
    "pyproject.toml",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_config.py",
    "tests/test_inference_protocol.py",
    "tests/test_logs.py",
    "tests/test_main.py",
    "tests/test_main_module.py",
    "tests/test_metrics.py",
    "tests/test_middleware.py",
    "tests/test_model.py",
    "tests/test_train.py",
]
HOSTILE = {
    "project_name": "Bob \"B\" O'Brien's \\ {model} #1 — naïve 日本 😀",
    "description": "Says \"hi\" \\n not a newline, {braces} # not a comment 'quoted' ✓",
    "author_name": 'Zoë "Z" O\'Connor \\ {x} #2',
}


def test_default_render_has_exactly_the_expected_files(
    default_project: BakedProject,
) -> None:
    assert default_project.path.name == "iris-classifier"
    assert default_project.files() == DEFAULT_FILES


def test_default_render_leaves_no_template_residue(
    default_project: BakedProject,
) -> None:
    for relative in default_project.files():
        text = default_project.read(relative)
        found = template_residue(text)
        assert not found, f"{relative} still contains {found}"


def test_files_copied_without_rendering_hold_no_template_code() -> None:
    # Cookiecutter copies these byte for byte: Jinja in one would ship raw.
    patterns = DEFAULTS["_copy_without_render"]
    project_dir = TEMPLATE / "{{cookiecutter.project_slug}}"
    files = [path for path in project_dir.rglob("*") if path.is_file()]
    for pattern in patterns:
        matched = [
            path
            for path in files
            if fnmatch(path.relative_to(project_dir).as_posix(), pattern)
        ]
        assert matched, f"{pattern!r} in _copy_without_render matches no file"
        for path in matched:
            assert template_residue(path.read_text()) == [], path


def test_default_pyproject_carries_the_answers(default_project: BakedProject) -> None:
    project = default_project.pyproject()["project"]
    assert project["name"] == "iris-classifier"
    assert project["version"] == "0.1.0"
    assert project["description"] == DEFAULTS["description"]
    assert project["authors"] == [
        {"name": DEFAULTS["author_name"], "email": DEFAULTS["author_email"]}
    ]
    assert project["requires-python"] == ">=3.11"
    assert project["license"] == "MIT"


def test_default_pyproject_keeps_training_and_tools_out_of_production(
    default_project: BakedProject,
) -> None:
    pyproject = default_project.pyproject()
    production = " ".join(pyproject["project"]["dependencies"])
    for name in ("fastapi", "uvicorn[standard]", "pydantic-settings"):
        assert name in production
    for name in ("pytest", "ruff", "scikit-learn", "httpx", "mypy"):
        assert name not in production
    groups = pyproject["dependency-groups"]
    assert {"pytest", "ruff", "mypy", "pre-commit"} <= {
        spec.split(">")[0] for spec in groups["dev"]
    }
    assert any(spec.startswith("scikit-learn") for spec in groups["train"])
    assert pyproject["tool"]["poetry"]["group"]["train"]["optional"] is True
    assert pyproject["build-system"]["requires"] == ["poetry-core>=2.2"]


def test_default_render_python_files_compile(default_project: BakedProject) -> None:
    for relative in default_project.files():
        if relative.endswith(".py"):
            compile(default_project.read(relative), relative, "exec")


def test_default_render_is_ruff_clean(default_project: BakedProject) -> None:
    default_project.assert_ruff_clean()


@pytest.mark.parametrize("license_name", DEFAULTS["license"])
def test_each_license_renders_clean(output_dir: Path, license_name: str) -> None:
    project = bake(output_dir, license=license_name)
    expression = project.pyproject()["project"]["license"]
    if license_name == "Proprietary":
        assert not project.has_file("LICENSE")
        assert expression == "LicenseRef-Proprietary"
        assert (
            "Private :: Do Not Upload" in project.pyproject()["project"]["classifiers"]
        )
    else:
        assert expression == license_name
        assert DEFAULTS["author_name"] in project.read("LICENSE")
    assert not (project.path / "_licenses").exists()
    project.assert_ruff_clean()


@pytest.mark.parametrize("python_version", DEFAULTS["python_version"])
def test_each_python_version_renders_clean(
    output_dir: Path, python_version: str
) -> None:
    project = bake(output_dir, python_version=python_version)
    assert project.pyproject()["project"]["requires-python"] == f">={python_version}"
    assert f"Python {python_version}+" in project.read("README.md")
    project.assert_ruff_clean()


def assert_round_trip(project: BakedProject, answers: dict[str, str]) -> None:
    pyproject = tomllib.loads(project.read("pyproject.toml"))["project"]
    assert pyproject["keywords"][0] == answers["project_name"]
    assert pyproject["description"] == answers["description"]
    assert pyproject["authors"][0]["name"] == answers["author_name"]
    readme = project.read("README.md")
    assert readme.startswith(
        f"# {answers['project_name']}\n\n{answers['description']}\n"
    )
    assert answers["author_name"] in project.read("LICENSE")
    for relative in project.files():
        if relative.endswith(".py"):
            compile(project.read(relative), relative, "exec")
    project.assert_ruff_clean()


def test_hostile_answers_round_trip(output_dir: Path) -> None:
    project = bake(output_dir, **HOSTILE)
    assert project.path.name == "bob-b-o-brien-s-model-1-naive-ri-ben"
    assert_round_trip(project, HOSTILE)


def test_hostile_typed_answers_round_trip_with_jinja_delimiters(
    output_dir: Path,
) -> None:
    # Typed answers are taken literally; only --no-input values are Jinja-rendered
    # by cookiecutter itself, before the template sees them.
    answers = {
        "project_name": 'Lab {{ model }} {% raw %} "x" \\ #1',
        "description": "{# not a comment #} and {{ not.a.variable }}",
        "author_name": "Ana {{ x }} 'A' Ñ",
    }
    prompts = [key for key in DEFAULTS if not key.startswith("_")]
    typed = [answers["project_name"], "lab-model", answers["description"]]
    typed += [answers["author_name"]] + [""] * (len(prompts) - len(typed) - 1)
    result = run_cli(output_dir, input_text="\n".join(typed) + "\n")
    assert result.returncode == 0, result.stderr
    assert_round_trip(BakedProject(output_dir / "lab-model"), answers)


INVALID_ANSWERS = [
    ("project_slug", "my project"),
    ("project_slug", "a/../b"),
    ("project_slug", ".."),
    ("project_slug", ""),
    ("project_slug", "1st-model"),
    ("project_slug", "-model"),
    ("author_email", "not-an-email"),
    ("version", "one.two"),
    ("description", "   "),
    ("author_name", "Doe, Jane"),
]


@pytest.mark.parametrize(("field", "value"), INVALID_ANSWERS)
def test_invalid_answer_is_refused_by_the_cli_leaving_nothing(
    output_dir: Path, field: str, value: str
) -> None:
    result = run_cli(output_dir, f"{field}={value}")
    assert result.returncode != 0
    assert f"ERROR: {value!r} is not a valid {field}: " in result.stderr
    assert list(output_dir.iterdir()) == []


def test_invalid_answer_raises_failed_hook(output_dir: Path) -> None:
    with pytest.raises(FailedHookException):
        bake(output_dir, version="not a version")
    assert list(output_dir.iterdir()) == []
