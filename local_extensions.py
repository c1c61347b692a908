"""The answers' rules and derived values, as Jinja filters for cookiecutter.json.

Every template cookiecutter renders with these filters checks the answers it is
given before it renders (``CheckedTemplate``): the ``__`` variables of
cookiecutter.json, rendered after the prompts and before anything is created,
and the project directory's name, rendered right before cookiecutter creates it.
No answer can turn that off: a ``__validate=`` or a derived value given on the
command line or in a config file is checked like the rest, so a bad answer is
refused while nothing exists yet: not the project directory, not a parent of
it, not the replay file. A refusal raises cookiecutter's ``FailedHookException``
with one ``ERROR: '<value>' is not a valid <field>: <what would be>`` line,
which the cookiecutter command prints before exiting 1.

Cookiecutter finds this module because it puts the template's root on
``sys.path`` while it renders (``_extensions`` in cookiecutter.json).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cookiecutter.exceptions import FailedHookException
from jinja2 import Environment, Template
from jinja2.ext import Extension
from slugify import slugify

# Lower-case letters, digits and single hyphens, starting with a letter: a valid
# distribution name (PEP 508), directory name, image name and Kubernetes Service
# name (an RFC 1035 label, which must start with a letter), equal to its own slug.
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# Kubernetes object names and label values, and DNS labels, stop at 63.
MAX_SLUG_LENGTH = 63
# Put in front of a name's slug that does not start with a letter ("3D Scorer").
SLUG_PREFIX = "service"
EMAIL_PATTERN = re.compile(
    r"[^@\s\"'\\<>(),;:\[\]]+@[^@\s\"'\\<>(),;:\[\]]+\.[A-Za-z]{2,}"
)
# The version pattern given in PEP 440, appendix B.
VERSION_PATTERN = re.compile(
    r"""
    v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_\.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_\.]?[0-9]*)?
    (?P<post>(?:-[0-9]+)|(?:[-_\.]?(?:post|rev|r)[-_\.]?[0-9]*))?
    (?P<dev>[-_\.]?dev[-_\.]?[0-9]*)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_\.][a-z0-9]+)*))?
    """,
    re.VERBOSE | re.IGNORECASE,
)
# A container image tag (the OCI distribution spec): the version becomes one.
IMAGE_TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_IMAGE_TAG_LENGTH = 128
FREE_TEXT_FIELDS = ("project_name", "description", "author_name")
# Control characters, surrogates and line or paragraph separators: they end a
# line in package metadata, or cannot be written to TOML or UTF-8 at all.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# What Markdown reads as markup anywhere in a line: escapes, code, emphasis,
# links, HTML, entities, heading marks, lists, tables and strike-through.
MARKDOWN_MARKUP = re.compile(r"([\\`*_\[\]<>&#+|~])")
# What starts a list or a rule only at the start of a line: "-", "1." and "1)".
MARKDOWN_LINE_START = re.compile(r"^([0-9]{1,9}(?=[.)])|(?=-))")

# Option -> paths (files or directories) that exist only when it is on. The
# post-gen hook removes them when it is off, keeping whatever was there before.
OPTIONAL_PATHS: dict[str, tuple[str, ...]] = {
    "include_docker": ("Dockerfile", ".dockerignore"),
    "include_github_actions": (".github",),
    "include_metrics": (
        "app/metrics.py",
        "app/prediction_metrics.py",
        "tests/test_metrics.py",
        "tests/test_prediction_metrics.py",
        "monitoring",
    ),
    "include_kubernetes": ("deploy", "tests/test_deploy.py"),
}
# Options -> paths that exist only when all of them are on: the post-gen hook
# removes them when one is off, unless the other's paths took them already.
JOINT_PATHS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("include_kubernetes", "include_metrics"): (
        "deploy/kubernetes/monitoring",
        "deploy/kubernetes/keda",
    ),
}
# The license texts LICENSE is rendered from; no LICENSE at all for this one.
LICENSE_TEXTS = "_licenses"
# The files of each model_task, under _tasks/<task>/: the post-gen hook moves
# the chosen task's into place, then removes the directory.
TASK_FILES = "_tasks"
NO_LICENSE = "Proprietary"
# The answers the rules read: once all are in, the answers can be checked.
ANSWER_FIELDS = (
    "model_task",
    *FREE_TEXT_FIELDS,
    "project_slug",
    "author_email",
    "version",
    "license",
    *OPTIONAL_PATHS,
)
# The generated project as the template holds it: the paths a render writes.
PROJECT_TEMPLATE = Path(__file__).resolve().parent / "{{cookiecutter.project_slug}}"


class InvalidAnswerError(ValueError):
    """An answer that cannot produce a working project."""

    def __init__(self, value: str, field: str, hint: str) -> None:
        super().__init__(f"{value!r} is not a valid {field}: {hint}")


def validate_slug(slug: str) -> None:
    if not SLUG_PATTERN.fullmatch(slug) or len(slug) > MAX_SLUG_LENGTH:
        raise InvalidAnswerError(
            slug,
            "project_slug",
            "use lower-case letters, digits and single hyphens, starting with a letter,"
            f" at most {MAX_SLUG_LENGTH} characters (e.g. 'iris-classifier')",
        )


def validate_email(email: str) -> None:
    if not EMAIL_PATTERN.fullmatch(email):
        raise InvalidAnswerError(
            email, "author_email", "use an address of the form 'name@example.com'"
        )


def validate_version(version: str) -> None:
    if not VERSION_PATTERN.fullmatch(version):
        raise InvalidAnswerError(
            version, "version", "use a PEP 440 version such as '0.1.0' or '1.0.0rc1'"
        )
    if len(version) > MAX_IMAGE_TAG_LENGTH:
        raise InvalidAnswerError(
            version,
            "version",
            f"use at most {MAX_IMAGE_TAG_LENGTH} characters: the version is also"
            " the container image's tag",
        )


def validate_free_text(field: str, text: str) -> None:
    if not text.strip():
        raise InvalidAnswerError(text, field, "it must not be empty")
    if any(unicodedata.category(char) in UNPRINTABLE_CATEGORIES for char in text):
        raise InvalidAnswerError(
            text,
            field,
            "it must be a single line of printable text (no tabs, line breaks"
            " or control characters)",
        )


def validate_author_name(name: str) -> None:
    validate_free_text("author_name", name)
    if "," in name:
        raise InvalidAnswerError(
            name,
            "author_name",
            "package metadata cannot hold a comma in an author name"
            " (write 'Jane Doe', not 'Doe, Jane')",
        )


def validate_options(answers: Mapping[str, Any]) -> None:
    if answers["include_kubernetes"] and not answers["include_docker"]:
        raise InvalidAnswerError(
            "include_kubernetes=yes with include_docker=no",
            "combination of options",
            "the Kubernetes manifests deploy the container image, so answer yes"
            " to include_docker too (or no to include_kubernetes)",
        )


def validate_answers(answers: Mapping[str, Any]) -> None:
    """Refuse the first answer that cannot produce a working project."""
    for field in FREE_TEXT_FIELDS:
        validate_free_text(field, answers[field])
    validate_author_name(answers["author_name"])
    validate_slug(answers["project_slug"])
    validate_email(answers["author_email"])
    validate_version(answers["version"])
    validate_options(answers)


def default_slug(project_name: str) -> str:
    """A valid project_slug for this name: its words, lower-case and hyphenated."""
    words = [word for word in slugify(project_name).split("-") if word]
    if not words or not words[0][0].isalpha():
        words.insert(0, SLUG_PREFIX)
    slug = words[0][:MAX_SLUG_LENGTH]
    for word in words[1:]:
        if len(slug) + 1 + len(word) > MAX_SLUG_LENGTH:
            break
        slug = f"{slug}-{word}"
    return slug


def image_tag(version: str) -> str:
    """The container image tag for a valid version: ``!`` and ``+`` become ``-``."""
    return version.replace("!", "-").replace("+", "-")


def markdown_text(text: str) -> str:
    """One line that Markdown shows as this text, spaces around it aside."""
    escaped = MARKDOWN_MARKUP.sub(r"\\\1", text.strip())
    return MARKDOWN_LINE_START.sub(r"\1\\", escaped)


def pruned_paths(answers: Mapping[str, Any]) -> list[str]:
    """The paths the post-gen hook removes for these answers."""

    def paths() -> Iterator[str]:
        pruned = [
            path
            for option, optional in OPTIONAL_PATHS.items()
            if not answers[option]
            for path in optional
        ]
        yield from pruned
        for options, joint in JOINT_PATHS.items():
            if not all(answers[option] for option in options):
                yield from (path for path in joint if not _within(path, pruned))
        if answers["license"] == NO_LICENSE:
            yield "LICENSE"
        yield LICENSE_TEXTS
        yield TASK_FILES

    return list(paths())


def _within(path: str, parents: list[str]) -> bool:
    return any(Path(path).is_relative_to(parent) for parent in parents)


def pruned_paths_json(answers: Mapping[str, Any]) -> str:
    return json.dumps(pruned_paths(answers))


# The body of one /predict call for each model_task's sample model, in the
# README's and the CI workflow's examples: the first value of its Features.
@functools.cache
def example_features(model_task: str) -> dict[str, float]:
    """The example row of this task's ``Features``, as its model.py writes it.

    The sample model's module is the one source of its example: the README's
    and the CI workflow's requests are rendered from it.
    """
    return features_example(
        PROJECT_TEMPLATE / "_tasks" / model_task / "app" / "model.py"
    )


def features_example(source: Path) -> dict[str, float]:
    """The first example of the ``Features`` model that this module defines."""
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and node.name == "Features":
            for keyword in ast.walk(node):
                if (
                    isinstance(keyword, ast.keyword)
                    and keyword.arg == "json_schema_extra"
                ):
                    extra = ast.literal_eval(keyword.value)
                    example: dict[str, float] = extra["examples"][0]
                    return example
    raise LookupError(f"no example of Features in {source}")


def example_body(model_task: str) -> str:
    """The JSON body of a /predict call to this task's sample model."""
    return json.dumps(example_features(model_task))


def license_expression(license_name: str) -> str:
    """The SPDX license expression of pyproject.toml for this license answer."""
    return "LicenseRef-Proprietary" if license_name == NO_LICENSE else license_name


@functools.cache
def template_paths() -> tuple[Path, ...]:
    """Every path of the generated project in the template, parents first."""
    return tuple(
        sorted(
            path.relative_to(PROJECT_TEMPLATE) for path in PROJECT_TEMPLATE.rglob("*")
        )
    )


def written_paths(answers: Mapping[str, Any]) -> list[str]:
    """The paths a render writes through: the template's, but those pruned.

    The pre-gen hook sets aside whatever is at a pruned path before anything is
    written, so a render never writes through what the user had there.
    """
    pruned = [Path(path) for path in pruned_paths(answers)]
    return [
        path.as_posix()
        for path in template_paths()
        if not any(path.is_relative_to(parent) for parent in pruned)
    ]


def written_paths_json(answers: Mapping[str, Any]) -> str:
    return json.dumps(written_paths(answers))


def validate_written_paths(project: Path, paths: list[str]) -> None:
    """Refuse a symbolic link that would take the render's writes out of the project."""
    root = project.resolve()
    for relative in paths:
        path = project / relative
        target = path.resolve()
        if not target.is_relative_to(root):
            raise InvalidAnswerError(
                str(path),
                "path to write the project's files to",
                f"it is a symbolic link out of the project, to '{target}'; replace"
                " it with a directory or file of the project's own, or render"
                " elsewhere",
            )


@functools.cache
def validate_project_once(project: Path, paths: tuple[str, ...]) -> None:
    """``validate_written_paths``, once per render rather than once per file:
    what the render writes itself is never a link."""
    validate_written_paths(project, list(paths))


# The values cookiecutter.json derives from the answers and the templates and
# hooks use; none is an answer. (``__validate`` is used nowhere: rendering it is
# what checks the answers, whatever it holds.)
DERIVED: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "__image_tag": lambda answers: image_tag(answers["version"]),
    "__license_expression": lambda answers: license_expression(answers["license"]),
    "__pruned_paths": pruned_paths_json,
    "__example_body": lambda answers: example_body(answers["model_task"]),
}


def validate_derived(answers: Mapping[str, Any]) -> None:
    """Refuse a derived value that differs from what the answers derive."""
    for name, derive in DERIVED.items():
        if name in answers and answers[name] != derive(answers):
            raise InvalidAnswerError(
                str(answers[name]),
                name,
                "it is derived from the other answers: leave it out of the command"
                " line and the config file",
            )


def check_answers(answers: Mapping[str, Any]) -> None:
    """Refuse answers, derived values or an existing project a render must not use.

    Does nothing while answers are still missing (cookiecutter is still asking).
    """
    if not all(field in answers for field in ANSWER_FIELDS):
        return
    try:
        validate_answers(answers)
        validate_derived(answers)
        # Only cookiecutter says where the project goes (cruft does not): the
        # pre-gen hook checks the same again from inside the project.
        if "_output_dir" in answers:
            project = Path(answers["_output_dir"], answers["project_slug"])
            validate_project_once(project, tuple(written_paths(answers)))
    except InvalidAnswerError as error:
        raise FailedHookException(f"ERROR: {error}") from None


def refuse_invalid_answers(answers: Mapping[str, Any]) -> str:
    """The ``validate_answers`` filter: nothing if the answers are valid."""
    check_answers(answers)
    return ""


class CheckedTemplate(Template):
    """A template that checks the answers it is rendered with first.

    Cookiecutter renders every template with the answers as ``cookiecutter``:
    each value of cookiecutter.json, the project directory's name, each path
    and file. None of these renders can be switched off by an answer.
    """

    def render(self, *args: Any, **kwargs: Any) -> str:
        answers = dict(*args, **kwargs).get("cookiecutter")
        if isinstance(answers, Mapping):
            check_answers(answers)
        return super().render(*args, **kwargs)


class AnswerFilters(Extension):
    """Adds this module's filters to cookiecutter's Jinja environment, and makes
    every template it renders check the answers (``CheckedTemplate``)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(
            validate_answers=refuse_invalid_answers,
            default_slug=default_slug,
            image_tag=image_tag,
            license_expression=license_expression,
            example_body=example_body,
            markdown_text=markdown_text,
            pruned_paths=pruned_paths_json,
            written_paths=written_paths_json,
        )
        environment.template_class = CheckedTemplate
        # cruft renders two commits of the template in one process when it
        # updates a project: forgetting this module makes each commit's render
        # import its own copy rather than the first one imported.
        sys.modules.pop(__name__, None)
