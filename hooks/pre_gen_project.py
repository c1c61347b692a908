"""Validate the answers before any file is written.

Each refusal prints one ``ERROR: ...`` line to stderr and exits 1; cookiecutter
then removes the project directory it created for this run.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Mapping

# Type checkers take this as true. At run time it spares the hook (a fresh
# interpreter for each render) the typing module, about a seventh of its run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The answers, rendered in by cookiecutter. A raw string keeps JSON's escapes intact.
ANSWERS = r"""{{ cookiecutter | tojson }}"""

# Lower-case letters, digits and single hyphens, starting with a letter: a valid
# distribution name (PEP 508) and directory name, identical to its own slug.
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# Kubernetes object names and label values, and DNS labels, stop at 63.
MAX_SLUG_LENGTH = 63
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
FREE_TEXT_FIELDS = ("project_name", "description", "author_name")
# Control characters, surrogates and line or paragraph separators: they end a
# line in package metadata, or cannot be written to TOML or UTF-8 at all.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


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


def validate_options(answers: Mapping[str, object]) -> None:
    if answers["include_kubernetes"] and not answers["include_docker"]:
        raise InvalidAnswerError(
            "include_kubernetes=yes with include_docker=no",
            "combination of options",
            "the Kubernetes manifests deploy the container image, so answer yes"
            " to include_docker too (or no to include_kubernetes)",
        )


def validate_answers(answers: Mapping[str, Any]) -> None:
    for field in FREE_TEXT_FIELDS:
        validate_free_text(field, answers[field])
    validate_author_name(answers["author_name"])
    validate_slug(answers["project_slug"])
    validate_email(answers["author_email"])
    validate_version(answers["version"])
    validate_options(answers)


def main() -> None:
    answers = json.loads(ANSWERS)
    try:
        validate_answers(answers)
    except InvalidAnswerError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
