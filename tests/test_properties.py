"""Properties of the answers' rules, and of renders, under arbitrary input.

Arbitrary free text either round-trips through a render or is refused cleanly;
every accepted name derives an accepted slug; every accepted version derives a
valid image tag; escaped text reads back from Markdown as it was.
"""

import json
import tomllib
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from hypothesis import given, settings
from hypothesis import strategies as st

import local_extensions as rules
from tests.bake import DEFAULTS, BakedProject, bake
from tests.test_render import assert_readme_shows, markdown_blocks

FIELDS = ("project_name", "description", "author_name")
# Any Unicode text (no lone surrogates: they cannot be typed or encoded), half
# of it drawn from the characters that break naive escaping, mixed with others.
HOSTILE = "\"'\\{}#%$[]=,\t aZé日😀"
# What Markdown reads as markup, at the start of a line or anywhere.
MARKDOWN = "*_`<>&#+-=|~!()[].:1 "
free_text = st.one_of(
    st.text(st.sampled_from(HOSTILE), min_size=1, max_size=24),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=24),
)


def literal(text: str) -> str:
    """A --no-input answer that cookiecutter's own Jinja pass turns back into text.

    Cookiecutter renders answers given without prompts as Jinja; a typed answer
    is taken as it is. A Jinja string literal makes both paths give the same text.
    """
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"


def assert_carried_back(
    project: BakedProject, name: str, description: str, author: str
) -> None:
    pyproject = tomllib.loads(project.read("pyproject.toml"))["project"]
    assert pyproject["keywords"][0] == name
    assert pyproject["description"] == description
    assert pyproject["authors"][0]["name"] == author
    assert_readme_shows(project, name, description)
    assert json.loads(project.read("app/about.json"))["name"] == name
    assert author in project.read("LICENSE")
    for relative in project.text_files():
        text = project.read(relative)
        if relative.endswith(".py"):
            compile(text, relative, "exec")
        elif relative.endswith((".yml", ".yaml")):
            list(yaml.safe_load_all(text))


def is_accepted(field: str, text: str) -> bool:
    try:
        rules.validate_free_text(field, text)
    except rules.InvalidAnswerError:
        return False
    return True


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(name=free_text)
def test_every_accepted_name_derives_an_accepted_slug(name: str) -> None:
    if is_accepted("project_name", name):
        rules.validate_slug(rules.default_slug(name))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    version=st.one_of(
        st.from_regex(rules.VERSION_PATTERN, fullmatch=True),
        st.from_regex(r"[0-9]{1,80}(\.[0-9]{1,80}){0,3}", fullmatch=True),
    )
)
def test_every_accepted_version_derives_a_valid_image_tag(version: str) -> None:
    try:
        rules.validate_version(version)
    except rules.InvalidAnswerError:
        assert len(version) > rules.MAX_IMAGE_TAG_LENGTH
        return
    assert rules.IMAGE_TAG_PATTERN.fullmatch(rules.image_tag(version))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    text=st.one_of(
        st.text(st.sampled_from(MARKDOWN + HOSTILE), min_size=1, max_size=24),
        free_text,
    )
)
def test_escaped_text_reads_back_from_markdown(text: str) -> None:
    if not is_accepted("project_name", text):
        return
    readme = f"# {rules.markdown_text(text)}\n\n{rules.markdown_text(text)}\n"
    assert markdown_blocks(readme) == [
        ("heading_open ['text']", text.strip()),
        ("paragraph_open ['text']", text.strip()),
    ]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(field=st.sampled_from(FIELDS), text=free_text)
def test_free_text_round_trips_or_is_refused(field: str, text: str) -> None:
    answers = {**{key: DEFAULTS[key] for key in FIELDS}, field: text}
    with TemporaryDirectory() as tmp:
        output = Path(tmp)
        try:
            project = bake(
                output,
                project_slug="property-test",  # slugs have tests of their own
                **{key: literal(value) for key, value in answers.items()},
            )
        except FailedHookException as refusal:
            error = str(refusal)
            assert error.startswith(f"ERROR: {text!r} is not a valid {field}: "), error
            assert list(output.iterdir()) == []
            return
        assert_carried_back(project, *answers.values())
