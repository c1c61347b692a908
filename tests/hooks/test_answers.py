"""Unit tests of the answers' rules, local_extensions.py: validation, derived
values and the paths to prune, before anything is written."""

import json

import pytest
from cookiecutter.exceptions import FailedHookException

import local_extensions as rules
from tests.harness import DEFAULTS, TEMPLATE

VALID_ANSWERS = {key: value for key, value in DEFAULTS.items() if key[0] != "_"} | {
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


def test_optional_paths_exist_in_the_template_or_in_every_task() -> None:
    project = TEMPLATE / "{{cookiecutter.project_slug}}"
    tasks = [project / rules.TASK_FILES / task for task in DEFAULTS["model_task"]]
    for paths in rules.OPTIONAL_PATHS.values():
        for path in paths:
            in_tasks = [(task / path).exists() for task in tasks]
            assert (project / path).exists() or all(in_tasks), path


def test_pruned_paths_filter_renders_json() -> None:
    answers = VALID_ANSWERS | {"include_docker": False}
    assert json.loads(rules.pruned_paths_json(answers)) == rules.pruned_paths(answers)
