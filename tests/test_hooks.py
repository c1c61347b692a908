"""Unit tests of the hooks' functions, imported from the template's hooks/."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.bake import TEMPLATE


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, TEMPLATE / "hooks" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")


@pytest.mark.parametrize("slug", ["iris", "iris-classifier", "model2", "a1-b2-c3"])
def test_validate_slug_accepts(slug: str) -> None:
    pre_gen.validate_slug(slug)


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "my project",
        "a/../b",
        "..",
        "a/b",
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
    ],
)
def test_validate_slug_refuses(slug: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswerError) as raised:
        pre_gen.validate_slug(slug)
    assert str(raised.value).startswith(f"{slug!r} is not a valid project_slug: ")


@pytest.mark.parametrize("email", ["jane@example.com", "j.doe+ml@sub.example.org"])
def test_validate_email_accepts(email: str) -> None:
    pre_gen.validate_email(email)


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
    with pytest.raises(pre_gen.InvalidAnswerError, match="is not a valid author_email"):
        pre_gen.validate_email(email)


@pytest.mark.parametrize(
    "version", ["0.1.0", "1.0", "2024.1", "1.0.0rc1", "1.0.post2", "1.0.dev3", "1!2.0"]
)
def test_validate_version_accepts(version: str) -> None:
    pre_gen.validate_version(version)


@pytest.mark.parametrize("version", ["", "one", "1.0.0-beta+", "1..0", "v", "1.0 "])
def test_validate_version_refuses(version: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswerError, match="is not a valid version"):
        pre_gen.validate_version(version)


@pytest.mark.parametrize(
    "text", ["", "   ", "two\nlines", "tab\there", "nul\x00", "\u2028"]
)
def test_validate_free_text_refuses_blank_or_multiline(text: str) -> None:
    with pytest.raises(pre_gen.InvalidAnswerError, match="is not a valid description"):
        pre_gen.validate_free_text("description", text)


def test_validate_free_text_accepts_hostile_printable_text() -> None:
    pre_gen.validate_free_text("description", 'Bob "B" O\'Brien \\ {x} #1 ñ 日本 😀')


def test_validate_author_name_refuses_comma() -> None:
    with pytest.raises(pre_gen.InvalidAnswerError, match="comma"):
        pre_gen.validate_author_name("Doe, Jane")


def test_write_license_keeps_chosen_text(tmp_path: Path) -> None:
    (tmp_path / "_licenses").mkdir()
    for name in ("MIT", "Apache-2.0"):
        (tmp_path / "_licenses" / name).write_text(f"{name} text")
    post_gen.write_license(tmp_path, "Apache-2.0")
    assert (tmp_path / "LICENSE").read_text() == "Apache-2.0 text"
    assert not (tmp_path / "_licenses").exists()


def test_write_license_proprietary_writes_none(tmp_path: Path) -> None:
    (tmp_path / "_licenses").mkdir()
    (tmp_path / "_licenses" / "MIT").write_text("MIT text")
    post_gen.write_license(tmp_path, "Proprietary")
    assert list(tmp_path.iterdir()) == []


def test_prune_removes_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / "kept.txt").write_text("kept")
    post_gen.prune(tmp_path, ["Dockerfile", ".github", "absent.txt"])
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]
