"""The generated pre-commit hooks need only pre-commit: no Poetry, no network
once installed, and the same tool versions as the project's dev group."""

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from toolkit.render import BakedProject


def local_hooks(project: BakedProject) -> list[dict[str, object]]:
    config = yaml.safe_load(project.read(".pre-commit-config.yaml"))
    return [
        hook
        for repo in config["repos"]
        if repo["repo"] == "local"
        for hook in repo["hooks"]
    ]


def test_hooks_install_their_own_tools(default_project: BakedProject) -> None:
    hooks = local_hooks(default_project)
    assert hooks
    for hook in hooks:
        assert hook["language"] == "python", hook["id"]
        assert hook["additional_dependencies"], hook["id"]
        assert "poetry" not in str(hook["entry"]).split(), hook["id"]


def test_hook_pins_equal_the_dev_group_floors(default_project: BakedProject) -> None:
    floors = {}
    for spec in default_project.pyproject()["dependency-groups"]["dev"]:
        requirement = Requirement(spec)
        (specifier,) = requirement.specifier
        assert specifier.operator == ">=", spec
        floors[requirement.name] = Version(specifier.version)
    for hook in local_hooks(default_project):
        for spec in hook["additional_dependencies"]:  # type: ignore[attr-defined]
            requirement = Requirement(spec)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", spec
            assert Version(specifier.version) == floors[requirement.name], spec
