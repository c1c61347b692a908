"""Unit tests of the hooks: the pre-gen hook sets the user's files aside, the
post-gen hook prunes what this render wrote for options that are off and puts
the user's files back."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from toolkit.render import TEMPLATE


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


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def tree(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


USER_FILES = {
    "Dockerfile": "FROM theirs",
    "deploy/terraform/main.tf": "terraform {}",
    ".github/CODEOWNERS": "* @them",
    "tests/test_deploy.py": "def test_theirs(): ...",
    "app/main.py": "print('not pruned, not set aside')",
}


def test_set_aside_moves_only_existing_pruned_paths(tmp_path: Path) -> None:
    write(tmp_path, USER_FILES)
    pre_gen.set_aside(
        tmp_path,
        ["Dockerfile", "deploy", ".github", "tests/test_deploy.py", "absent.txt"],
    )
    assert tree(tmp_path) == {
        f"{pre_gen.SET_ASIDE}/{path}": text
        for path, text in USER_FILES.items()
        if path != "app/main.py"
    } | {"app/main.py": USER_FILES["app/main.py"]}


def test_set_aside_moves_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").symlink_to(tmp_path / "nowhere")
    pre_gen.set_aside(tmp_path, ["Dockerfile"])
    assert not (tmp_path / "Dockerfile").is_symlink()
    assert (tmp_path / pre_gen.SET_ASIDE / "Dockerfile").is_symlink()


def test_set_aside_refuses_a_leftover_store(tmp_path: Path) -> None:
    (tmp_path / pre_gen.SET_ASIDE).mkdir()
    with pytest.raises(pre_gen.LeftoverError, match="is not a valid output directory"):
        pre_gen.set_aside(tmp_path, [])


def test_refuse_links_out_refuses_a_link_that_leaves_the_project(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "deploy").mkdir(parents=True)
    (project / "deploy" / "kubernetes").symlink_to(tmp_path)
    pre_gen.refuse_links_out(project, ["app", "deploy"])
    with pytest.raises(pre_gen.LinkOutError) as raised:
        pre_gen.refuse_links_out(project, ["deploy", "deploy/kubernetes"])
    assert str(raised.value) == (
        f"ERROR: '{project}/deploy/kubernetes' is not a valid path to write the"
        f" project's files to: it is a symbolic link out of the project, to"
        f" '{tmp_path}'; replace it with a directory or file of the project's own,"
        " or render elsewhere"
    )


def test_refuse_links_out_accepts_a_link_inside_the_project(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "deploy").symlink_to(tmp_path / "infra")
    pre_gen.refuse_links_out(tmp_path, ["deploy", "deploy/kubernetes"])


def test_prune_then_put_back_keeps_only_the_users_files(tmp_path: Path) -> None:
    write(tmp_path, USER_FILES)
    paths = ["Dockerfile", "deploy", ".github", "tests/test_deploy.py", "LICENSE"]
    pre_gen.set_aside(tmp_path, paths)
    rendered = {
        "Dockerfile": "FROM ours",
        "deploy/kubernetes/service.yaml": "kind: Service",
        ".github/workflows/ci.yml": "on: push",
        "tests/test_deploy.py": "def test_ours(): ...",
        "LICENSE": "",
    }
    write(tmp_path, rendered)
    post_gen.prune(tmp_path, paths)
    post_gen.put_back(tmp_path, paths)
    assert tree(tmp_path) == USER_FILES
    assert not (tmp_path / post_gen.SET_ASIDE).exists()


def test_prune_removes_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / "kept.txt").write_text("kept")
    post_gen.prune(tmp_path, ["Dockerfile", ".github", "absent.txt"])
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]


def test_hooks_agree_on_where_files_are_set_aside() -> None:
    assert pre_gen.SET_ASIDE == post_gen.SET_ASIDE
