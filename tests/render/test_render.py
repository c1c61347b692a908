"""What the template renders, read without installing anything."""

import json
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException

import local_extensions as rules
from tests.harness import (
    HOSTILE,
    assert_readme_shows,
    assert_ruff_clean,
    markdown_blocks,
    run_cli,
    template_residue,
)
from toolkit.render import BINARY_SUFFIXES, DEFAULTS, TEMPLATE, BakedProject, bake

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
    "app/about.json",
    "app/artifact.py",
    "app/batching.py",
    "app/config.py",
    "app/deps.py",
    "app/errors.py",
    "app/http_protocol.py",
    "app/inference_protocol.py",
    "app/logs.py",
    "app/main.py",
    "app/metrics.py",
    "app/middleware.py",
    "app/model.onnx",
    "app/model.py",
    "app/observers.py",
    "app/prediction_metrics.py",
    "app/schemas.py",
    "app/security.py",
    "app/tracing.py",
    "app/train.py",
    "monitoring/prometheus/rules.test.yml",
    "monitoring/prometheus/rules.yml",
    "pyproject.toml",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_artifact.py",
    "tests/test_batching.py",
    "tests/test_config.py",
    "tests/test_deps.py",
    "tests/test_inference_protocol.py",
    "tests/test_logs.py",
    "tests/test_main.py",
    "tests/test_main_module.py",
    "tests/test_metrics.py",
    "tests/test_middleware.py",
    "tests/test_model.py",
    "tests/test_prediction_metrics.py",
    "tests/test_security.py",
    "tests/test_tracing.py",
    "tests/test_train.py",
]
# Words of each task that a render of the other must not carry.
TASK_WORDS = {
    "classification": r"iris|setosa|sepal|petal|probabilit|classif(?!iers)|\bclasses\b",
    "regression": r"diabetes|regressor|predicted_value|r²",
}
TASK_FILES = TEMPLATE / "{{cookiecutter.project_slug}}" / "_tasks"


def test_default_render_has_exactly_the_expected_files(
    default_project: BakedProject,
) -> None:
    assert default_project.path.name == "iris-classifier"
    assert default_project.files() == DEFAULT_FILES


def test_each_task_renders_the_same_files(output_dir: Path) -> None:
    project = bake(output_dir, model_task="regression")
    assert project.files() == DEFAULT_FILES


def test_each_task_has_the_same_files_and_none_beside_them() -> None:
    """Each task's files are the same set, and no other file of the template
    has their names: the task's file would replace it."""
    tasks = [TASK_FILES / task for task in DEFAULTS["model_task"]]
    names = [
        sorted(path.relative_to(task) for path in task.rglob("*") if path.is_file())
        for task in tasks
    ]
    assert all(found == names[0] for found in names), names
    project = TEMPLATE / "{{cookiecutter.project_slug}}"
    assert [name for name in names[0] if (project / name).exists()] == []


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_render_speaks_only_of_its_own_task(output_dir: Path, task: str) -> None:
    project = bake(output_dir, model_task=task)
    (other,) = set(TASK_WORDS) - {task}
    found = [
        f"{relative}: {line.strip()}"
        for relative in project.text_files()
        for line in project.read(relative).splitlines()
        if re.search(TASK_WORDS[other], line, re.IGNORECASE)
    ]
    assert found == []


def test_an_unknown_task_is_refused_with_nothing_made(output_dir: Path) -> None:
    result = run_cli(output_dir, "model_task=clustering")
    assert result.returncode != 0
    assert "clustering" in result.stdout + result.stderr
    assert list(output_dir.iterdir()) == []


def test_default_render_leaves_no_template_residue(
    default_project: BakedProject,
) -> None:
    for relative in default_project.text_files():
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
            if not path.name.endswith(BINARY_SUFFIXES):
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
    # poetry-core 2.2.1 accepts a PEP 735 group declared optional; Poetry 2.3
    # counts PEP 735 groups in the lock file's hash (tests/end_to_end/test_floors.py).
    assert pyproject["build-system"]["requires"] == ["poetry-core>=2.2.1"]
    assert pyproject["tool"]["poetry"]["requires-poetry"] == ">=2.3"


def test_default_render_python_files_compile(default_project: BakedProject) -> None:
    for relative in default_project.files():
        if relative.endswith(".py"):
            compile(default_project.read(relative), relative, "exec")


def test_default_render_is_ruff_clean(default_project: BakedProject) -> None:
    assert_ruff_clean(default_project)


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
    assert_ruff_clean(project)


@pytest.mark.parametrize("python_version", DEFAULTS["python_version"])
def test_each_python_version_renders_clean(
    output_dir: Path, python_version: str
) -> None:
    project = bake(output_dir, python_version=python_version)
    assert project.pyproject()["project"]["requires-python"] == f">={python_version}"
    assert f"Python {python_version}+" in project.read("README.md")
    assert_ruff_clean(project)


def assert_round_trip(project: BakedProject, answers: dict[str, str]) -> None:
    pyproject = tomllib.loads(project.read("pyproject.toml"))["project"]
    assert pyproject["keywords"][0] == answers["project_name"]
    assert pyproject["description"] == answers["description"]
    assert pyproject["authors"][0]["name"] == answers["author_name"]
    assert_readme_shows(project, answers["project_name"], answers["description"])
    about = json.loads(project.read("app/about.json"))
    assert about["name"] == answers["project_name"]
    assert answers["author_name"] in project.read("LICENSE")
    for relative in project.files():
        if relative.endswith(".py"):
            compile(project.read(relative), relative, "exec")
    assert_ruff_clean(project)


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
    assert prompts[:2] == ["model_task", "project_name"]
    typed = ["", answers["project_name"], "lab-model", answers["description"]]
    typed += [answers["author_name"]] + [""] * (len(prompts) - len(typed) - 1)
    result = run_cli(output_dir, input_text="\n".join(typed) + "\n")
    assert result.returncode == 0, result.stderr
    assert_round_trip(BakedProject(output_dir / "lab-model"), answers)


def test_hostile_name_keeps_the_readme_markdown(
    output_dir: Path, default_project: BakedProject
) -> None:
    name = 'Bob "B" O\'Brien \\ {x} *_ # [a](b) <i> &amp; `c` ~~d~~ 1.'
    project = bake(output_dir, project_name=name, project_slug="bob")
    hostile = markdown_blocks(project.read("README.md"))
    default = markdown_blocks(default_project.read("README.md"))
    assert hostile[0] == ("heading_open ['text']", name)
    assert [kind for kind, _ in hostile] == [kind for kind, _ in default]


def test_template_renders_the_project_from_its_slug_directory(
    default_project: BakedProject,
) -> None:
    templated = [path.name for path in TEMPLATE.iterdir() if "{{" in path.name]
    assert templated == ["{{cookiecutter.project_slug}}"]
    assert default_project.path.name == "iris-classifier"


@pytest.mark.parametrize(
    ("name", "slug"),
    [("3D Fraud Scorer", "service-3d-fraud-scorer"), ("😀", "service")],
)
def test_derived_slug_of_an_awkward_name_renders(
    output_dir: Path, name: str, slug: str
) -> None:
    project = bake(output_dir, project_name=name)
    assert project.path == output_dir / slug
    assert project.pyproject()["project"]["name"] == slug


def test_successful_render_prints_the_next_steps(output_dir: Path) -> None:
    result = run_cli(output_dir)
    assert result.returncode == 0, result.stderr
    project = output_dir / "iris-classifier"
    assert result.stdout.splitlines()[-5:] == [
        "",
        f"    cd {project}",
        "    poetry install",
        "    poetry run pytest",
        "    poetry run python -m app",
    ]


YAML_WORDS = ["null", "yes", "no", "true", "false", "on", "off"]
PROBE_SLUG = "probe-slug"


def yaml_documents(project: BakedProject) -> dict[str, list[Any]]:
    return {
        relative: list(yaml.safe_load_all(project.read(relative)))
        for relative in project.files()
        if relative.endswith((".yaml", ".yml"))
    }


def replaced(value: Any, old: str, new: str) -> Any:
    """This parsed YAML value with every string's ``old`` made ``new``."""
    if isinstance(value, dict):
        return {replaced(k, old, new): replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [replaced(item, old, new) for item in value]
    if isinstance(value, str):
        return value.replace(old, new)
    return value


@pytest.fixture(scope="module")
def probe_yaml(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Every YAML file of an all-options render whose slug no parser misreads."""
    project = bake(
        tmp_path_factory.mktemp("probe"),
        project_slug=PROBE_SLUG,
        include_kubernetes=True,
    )
    return yaml_documents(project)


@pytest.mark.parametrize("slug", YAML_WORDS)
def test_yaml_reads_every_slug_back_as_the_same_string(
    output_dir: Path, probe_yaml: dict[str, list[Any]], slug: str
) -> None:
    project = bake(output_dir, project_slug=slug, include_kubernetes=True)
    assert project.has_file("deploy/kubernetes/service.yaml")
    documents = yaml_documents(project)
    assert documents == replaced(probe_yaml, PROBE_SLUG, slug)
    service = documents["deploy/kubernetes/service.yaml"][0]
    assert service["metadata"]["name"] == slug


@pytest.mark.parametrize("version", ["1.0", "1!2.0+local.build.7", "3" * 128])
def test_image_tag_is_a_valid_tag(output_dir: Path, version: str) -> None:
    project = bake(output_dir, version=version, include_kubernetes=True)
    (kustomization,) = yaml_documents(project)["deploy/kubernetes/kustomization.yaml"]
    (image,) = kustomization["images"]
    assert rules.IMAGE_TAG_PATTERN.fullmatch(image["newTag"]), image["newTag"]
    assert image["newTag"] == rules.image_tag(version)


SLUG_HINT = (
    "use lower-case letters, digits and single hyphens, starting with a letter,"
    " at most 63 characters (e.g. 'iris-classifier')"
)
INVALID_ANSWERS = [
    ("project_slug", "my project"),
    ("project_slug", "a/../b"),
    ("project_slug", "a/b"),
    ("project_slug", ".."),
    ("project_slug", "../x"),
    ("project_slug", "{tmp_path}/absolute"),
    ("project_slug", ""),
    ("project_slug", "a" * 300),
    ("project_slug", "1st-model"),
    ("project_slug", "-model"),
    ("author_email", "not-an-email"),
    ("version", "one.two"),
    ("version", "1" * 129),
    ("description", "   "),
    ("author_name", "Doe, Jane"),
]


def expected_refusal(field: str, value: str) -> str:
    """Our line for this answer, as the rules word it."""
    answers = {
        key: value for key, value in DEFAULTS.items() if not key.startswith("_")
    } | {"project_slug": "iris-classifier", field: value}
    with pytest.raises(FailedHookException) as raised:
        rules.refuse_invalid_answers(answers)
    return str(raised.value)


@pytest.mark.parametrize(
    ("field", "value"), INVALID_ANSWERS, ids=lambda value: value[:20] or "empty"
)
def test_invalid_answer_is_refused_by_the_cli_leaving_nothing(
    tmp_path: Path, field: str, value: str
) -> None:
    value = value.replace("{tmp_path}", str(tmp_path))
    output_dir = tmp_path / "not" / "yet"  # cookiecutter would make it
    replay_dir = tmp_path / "replay"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"replay_dir": str(replay_dir)}))
    result = run_cli(output_dir, f"{field}={value}", config_file=config)
    line = expected_refusal(field, value)
    assert line.startswith(f"ERROR: {value!r} is not a valid {field}: ")
    assert (result.returncode, result.stdout + result.stderr) == (1, line + "\n")
    assert sorted(tmp_path.iterdir()) == [config]  # no output, no replay


def test_typed_invalid_answer_is_refused_leaving_nothing(output_dir: Path) -> None:
    prompts = [key for key in DEFAULTS if not key.startswith("_")]
    assert prompts[:3] == ["model_task", "project_name", "project_slug"]
    typed = ["", "My Model", "a/../b"] + [""] * (len(prompts) - 3)
    result = run_cli(output_dir, input_text="\n".join(typed) + "\n")
    assert result.returncode == 1
    # Typed answers are not echoed, so our line follows the last prompt.
    assert result.stdout.endswith(expected_refusal("project_slug", "a/../b") + "\n")
    assert "Traceback" not in result.stdout + result.stderr
    assert list(output_dir.iterdir()) == []


def test_slug_refusal_says_what_would_be_valid() -> None:
    assert expected_refusal("project_slug", "a/b") == (
        f"ERROR: 'a/b' is not a valid project_slug: {SLUG_HINT}"
    )


def test_invalid_answer_raises_failed_hook(output_dir: Path) -> None:
    with pytest.raises(FailedHookException, match=r"^ERROR: 'not a version' is"):
        bake(output_dir, version="not a version")
    assert list(output_dir.iterdir()) == []


# A file of the user's under every path a render with every option off prunes,
# and one beside each, where the template writes nothing.
USER_FILES = {
    "Dockerfile": "FROM their-base\n",
    ".dockerignore": "their-secrets/\n",
    ".github/CODEOWNERS": "* @their-team\n",
    ".github/workflows/ci.yml": "name: their CI\n",
    ".github/workflows/release.yml": "name: their release\n",
    "deploy/terraform/main.tf": "terraform {}\n",
    "deploy/kubernetes/their-ingress.yaml": "kind: Ingress\n",
    "app/metrics.py": "THEIR_METRICS = True\n",
    "tests/test_metrics.py": "def test_theirs() -> None: ...\n",
    "LICENSE": "Their own terms.\n",
    "_licenses/NOTICE": "Their notice.\n",
    "notes/todo.md": "their notes\n",
}
ALL_OFF = dict.fromkeys(rules.OPTIONAL_PATHS, False) | {"license": "Proprietary"}


def user_project(output_dir: Path) -> Path:
    project = output_dir / "iris-classifier"
    for relative, text in USER_FILES.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    return project


def read_user_files(project: Path) -> dict[str, str]:
    return {
        relative: (project / relative).read_text()
        for relative in USER_FILES
        if (project / relative).is_file()
    }


@pytest.mark.parametrize("flags", [["-f"], ["-f", "-s"]], ids=" ".join)
def test_overwrite_keeps_every_user_file_at_pruned_paths(
    output_dir: Path, flags: list[str]
) -> None:
    project = user_project(output_dir)
    answers = [f"{key}={value or 'no'}" for key, value in ALL_OFF.items()]
    result = run_cli(output_dir, *flags, *answers)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_user_files(project) == USER_FILES
    assert BakedProject(project).has_file("app/main.py")  # the render happened
    assert not (project / ".cookiecutter-set-aside").exists()


def test_overwrite_with_skip_keeps_the_users_license(output_dir: Path) -> None:
    project = user_project(output_dir)
    result = run_cli(output_dir, "-f", "-s", "license=MIT")
    assert result.returncode == 0, result.stdout + result.stderr
    # Cookiecutter's -s skips a rendered file that exists (it still copies the
    # files listed in _copy_without_render, such as app/metrics.py).
    for relative in ("LICENSE", "Dockerfile", ".github/workflows/ci.yml"):
        assert (project / relative).read_text() == USER_FILES[relative], relative


def test_overwrite_writes_the_files_of_options_that_are_on(output_dir: Path) -> None:
    project = user_project(output_dir)
    result = run_cli(output_dir, "-f", "license=MIT")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / "Dockerfile").read_text() != USER_FILES["Dockerfile"]
    assert "MIT License" in (project / "LICENSE").read_text()
    # Beside the template's files, and at paths pruned whatever the options:
    for relative in (
        ".github/CODEOWNERS",
        ".github/workflows/release.yml",
        "notes/todo.md",
        "_licenses/NOTICE",
    ):
        assert (project / relative).read_text() == USER_FILES[relative]
