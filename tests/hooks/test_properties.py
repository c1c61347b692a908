"""Properties of the answers' rules under arbitrary input.

Every accepted name derives an accepted slug; every accepted version derives a
valid image tag; escaped text reads back from Markdown as it was. (That free
text round-trips through a whole render is tests/end_to_end/test_free_text.py.)
"""

from hypothesis import given, settings
from hypothesis import strategies as st

import local_extensions as rules
from tests.harness import markdown_blocks

# Any Unicode text (no lone surrogates: they cannot be typed or encoded), half
# of it drawn from the characters that break naive escaping, mixed with others.
HOSTILE = "\"'\\{}#%$[]=,\t aZé日😀"
# What Markdown reads as markup, at the start of a line or anywhere.
MARKDOWN = "*_`<>&#+-=|~!()[].:1 "
free_text = st.one_of(
    st.text(st.sampled_from(HOSTILE), min_size=1, max_size=24),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=24),
)


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
