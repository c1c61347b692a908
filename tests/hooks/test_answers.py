"""Unit tests of the answers' rules, local_extensions.py: validation, derived
values and the paths to prune, before anything is written."""

import json
from pathlib import Path

import pytest
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import FailedHookException

import local_extensions as rules
from toolkit.render import DEFAULTS, TEMPLATE

VALID_ANSWERS = {key: value for key, value in DEFAULTS.items() if key[0] != "_"} | {
    "model_task": "classification",
    "project_name": "Iris Classifier",
    "project_slug": "iris-classifier",
    "python_version": "3.11",
    "license": "MIT",
}


@pytest.mark.parametrize("slug", ["iris", "iris-classifier", "model2", "a1-b2-c3"])
def test_validate_slug_accepts(slug: str) -> None:
    rules.validate_slug(slug)


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "my project",
        "a/../b",
        "..",
        "a/b",
        "../x",
        "/srv/x",
        "1model",
        "-model",
        "_model",
        "Model",
        "model-",
        "mo--del",
        "mo_del",
        "modèle",
        ".model",
        "a" * 64,
        "a" * 300,
    ],
)
def test_validate_slug_refuses(slug: str) -> None:
    with pytest.raises(rules.InvalidAnswerError) as raised:
        rules.validate_slug(slug)
    assert str(raised.value).startswith(f"{slug!r} is not a valid project_slug: ")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Iris Classifier", "iris-classifier"),
        ("3D Fraud Scorer", "service-3d-fraud-scorer"),
        ("😀", "service"),
        ("Naïve  Bayes__v2", "naive-bayes-v2"),
        ("ab " * 40, "-".join(["ab"] * 21)),
        ("x" * 70, "x" * 63),
    ],
)
def test_default_slug_is_the_name_made_valid(name: str, slug: str) -> None:
    assert rules.default_slug(name) == slug
    rules.validate_slug(slug)


@pytest.mark.parametrize("email", ["jane@example.com", "j.doe+ml@sub.example.org"])
def test_validate_email_accepts(email: str) -> None:
    rules.validate_email(email)


@pytest.mark.parametrize(
    "email",
    [
        "",
        "jane",
        "jane@",
        "@example.com",
        "jane@example",
        "a b@c.de",
        'a"b@c.de',
        "a@b@c.de",
    ],
)
def test_validate_email_refuses(email: str) -> None:
    with pytest.raises(rules.InvalidAnswerError, match="is not a valid author_email"):
        rules.validate_email(email)


@pytest.mark.parametrize(
    "version",
    ["0.1.0", "1.0", "2024.1", "1.0.0rc1", "1.0.post2", "1.0.dev3", "1!2.0", "1" * 128],
)
def test_validate_version_accepts(version: str) -> None:
    rules.validate_version(version)


@pytest.mark.parametrize(
    "version", ["", "one", "1.0.0-beta+", "1..0", "v", "1.0 ", "1" * 129]
)
def test_validate_version_refuses(version: str) -> None:
    with pytest.raises(rules.InvalidAnswerError, match="is not a valid version"):
        rules.validate_version(version)


@pytest.mark.parametrize(
    ("version", "tag"),
    [("0.1.0", "0.1.0"), ("1!2.0+local.7", "1-2.0-local.7"), ("v1.0_rc1", "v1.0_rc1")],
)
def test_image_tag_replaces_what_tags_cannot_hold(version: str, tag: str) -> None:
    assert rules.image_tag(version) == tag


@pytest.mark.parametrize(
    "text", ["", "   ", "two\nlines", "tab\there", "nul\x00", "\u2028"]
)
def test_validate_free_text_refuses_blank_or_multiline(text: str) -> None:
    with pytest.raises(rules.InvalidAnswerError, match="is not a valid description"):
        rules.validate_free_text("description", text)


def test_validate_free_text_accepts_hostile_printable_text() -> None:
    rules.validate_free_text("description", 'Bob "B" O\'Brien \\ {x} #1 ñ 日本 😀')


def test_validate_author_name_refuses_comma() -> None:
    with pytest.raises(rules.InvalidAnswerError, match="comma"):
        rules.validate_author_name("Doe, Jane")


def test_validate_answers_filter_passes_valid_answers() -> None:
    assert rules.refuse_invalid_answers(VALID_ANSWERS) == ""


def test_validate_answers_filter_raises_failed_hook_with_one_line() -> None:
    with pytest.raises(FailedHookException) as raised:
        rules.refuse_invalid_answers(VALID_ANSWERS | {"version": "one"})
    assert str(raised.value) == (
        "ERROR: 'one' is not a valid version: use a PEP 440 version such as '0.1.0'"
        " or '1.0.0rc1'"
    )


@pytest.mark.parametrize(
    ("text", "markdown"),
    [
        ("a*b_c\\d [e](f) #1 ü", "a\\*b\\_c\\\\d \\[e\\](f) \\#1 ü"),
        ("A machine-learning model.", "A machine-learning model."),
        ("1. first", "1\\. first"),
        ("2024) year", "2024\\) year"),
        ("- item", "\\- item"),
        ("  spaced  ", "spaced"),
    ],
)
def test_markdown_text_escapes_what_markdown_would_read(
    text: str, markdown: str
) -> None:
    assert rules.markdown_text(text) == markdown


def test_pruned_paths_follow_the_options_and_license() -> None:
    answers = VALID_ANSWERS | dict.fromkeys(rules.OPTIONAL_PATHS, False)
    assert rules.pruned_paths(answers | {"license": "Proprietary"}) == [
        *(path for paths in rules.OPTIONAL_PATHS.values() for path in paths),
        "LICENSE",
        "_licenses",
        "_tasks",
    ]
    on = VALID_ANSWERS | dict.fromkeys(rules.OPTIONAL_PATHS, True)
    assert rules.pruned_paths(on) == ["_licenses", "_tasks"]


def test_joint_paths_are_pruned_when_one_of_their_options_is_off() -> None:
    on = VALID_ANSWERS | dict.fromkeys(rules.OPTIONAL_PATHS, True)
    rule = "deploy/kubernetes/monitoring"
    assert rule in rules.pruned_paths(on | {"include_metrics": False})
    # With Kubernetes off, all of deploy/ goes, and the rule with it.
    off = rules.pruned_paths(on | {"include_kubernetes": False})
    assert "deploy" in off
    assert rule not in off
    assert rule not in rules.pruned_paths(on)


def test_optional_paths_exist_in_the_template_or_in_every_task() -> None:
    project = TEMPLATE / "{{cookiecutter.project_slug}}"
    tasks = [project / rules.TASK_FILES / task for task in DEFAULTS["model_task"]]
    for paths in [*rules.OPTIONAL_PATHS.values(), *rules.JOINT_PATHS.values()]:
        for path in paths:
            in_tasks = [(task / path).exists() for task in tasks]
            assert (project / path).exists() or all(in_tasks), path


def test_pruned_paths_filter_renders_json() -> None:
    answers = VALID_ANSWERS | {"include_docker": False}
    assert json.loads(rules.pruned_paths_json(answers)) == rules.pruned_paths(answers)


def test_license_expression_marks_proprietary_as_a_license_ref() -> None:
    assert rules.license_expression("MIT") == "MIT"
    assert rules.license_expression("Proprietary") == "LicenseRef-Proprietary"


DERIVED_ANSWERS = VALID_ANSWERS | {
    "__image_tag": "0.1.0",
    "__license_expression": "MIT",
    "__pruned_paths": rules.pruned_paths_json(VALID_ANSWERS),
}


def test_check_answers_accepts_derived_values_as_derived() -> None:
    rules.check_answers(DERIVED_ANSWERS)


@pytest.mark.parametrize("name", list(rules.DERIVED))
def test_check_answers_refuses_a_derived_value_set_from_outside(name: str) -> None:
    with pytest.raises(FailedHookException) as raised:
        rules.check_answers(DERIVED_ANSWERS | {name: "[]"})
    assert str(raised.value) == (
        f"ERROR: '[]' is not a valid {name}: it is derived from the other answers:"
        " leave it out of the command line and the config file"
    )


def test_check_answers_waits_for_every_answer() -> None:
    """While cookiecutter still asks, the answers so far are not refused."""
    asked = {key: value for key, value in VALID_ANSWERS.items() if key != "license"}
    rules.check_answers(asked | {"project_slug": "../escaped"})


def test_every_render_checks_the_answers_first() -> None:
    extensions = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_extensions"]
    environment = StrictEnvironment(
        context={"cookiecutter": {"_extensions": extensions}}
    )
    template = environment.from_string("no variable here")
    assert template.render(cookiecutter=VALID_ANSWERS) == "no variable here"
    with pytest.raises(FailedHookException, match="is not a valid project_slug"):
        template.render(cookiecutter=VALID_ANSWERS | {"project_slug": "../escaped"})


def test_written_paths_are_the_templates_but_the_pruned() -> None:
    answers = VALID_ANSWERS | {"include_kubernetes": False}
    written = rules.written_paths(answers)
    assert {"app", "app/main.py", "pyproject.toml", "LICENSE"} <= set(written)
    assert not [path for path in written if path.startswith(("deploy", "_licenses"))]
    kubernetes = rules.written_paths(answers | {"include_kubernetes": True})
    assert "deploy/kubernetes/kustomization.yaml" in kubernetes


def test_validate_written_paths_refuses_a_link_out_of_the_project(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "deploy").mkdir(parents=True)
    (project / "deploy/kubernetes").symlink_to(tmp_path)
    rules.validate_written_paths(project, ["app", "deploy"])
    with pytest.raises(rules.InvalidAnswerError) as raised:
        rules.validate_written_paths(project, ["deploy/kubernetes/service.yaml"])
    assert str(raised.value).startswith(
        f"'{project}/deploy/kubernetes/service.yaml' is not a valid path to write"
        f" the project's files to: it is a symbolic link out of the project, to"
        f" '{tmp_path}/service.yaml'"
    )


def test_validate_written_paths_accepts_a_link_inside_the_project(
    tmp_path: Path,
) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "deploy").symlink_to(tmp_path / "infra")
    rules.validate_written_paths(tmp_path, ["deploy", "deploy/kubernetes"])
