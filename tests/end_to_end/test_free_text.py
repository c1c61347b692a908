"""Arbitrary free text either round-trips through a whole render or is refused
cleanly, leaving nothing behind."""

import json
import tomllib
from pathlib import Path
from tempfile import TemporaryDirectory

import yaml
from cookiecutter.exceptions import FailedHookException
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness import assert_readme_shows
from toolkit.render import DEFAULTS, BakedProject, bake

FIELDS = ("project_name", "description", "author_name")
# Any Unicode text (no lone surrogates: they cannot be typed or encoded), half
# of it drawn from the characters that break naive escaping, mixed with others.
HOSTILE = "\"'\\{}#%$[]=,\t aZé日😀"
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
