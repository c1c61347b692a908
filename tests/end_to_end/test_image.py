"""The default render's container image, built from its Dockerfile and run.

Built and run with podman, so no Docker daemon is needed (toolkit/image.py says how
a base image that cannot be pulled is stood in for). The Dockerfile is built as
rendered; only the rendered copy's Poetry source points at the package index pip
uses, as the other slow tests do.
"""

import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import assert_classifies_the_samples
from toolkit.image import (
    RUNTIME,
    base_image,
    build,
    ensure_base_image,
    image_size,
    podman,
    require_tools,
    ulimits,
)
from toolkit.render import BakedProject, bake, use_package_index
from toolkit.serve import free_port, http

pytestmark = pytest.mark.image

USER_ID = "10001"
READY_TIMEOUT = 60.0
# Run inside the image: walks its file system and prints, one per line and
# tab-separated, Poetry's installed distributions (poetry is a namespace package,
# so its metadata is what marks it), any C compiler, and the SHA-256 of every
# file named on the command line.
FIND_LEFTOVERS = """
import hashlib, os, sys
names = set(sys.argv[1:])
compilers = {"cc", "gcc", "g++", "c++", "clang", "cc1"}
for root, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in {"/proc", "/sys"}]
    for name in dirs:
        if name.lower().startswith("poetry") and name.endswith(".dist-info"):
            print("poetry", os.path.join(root, name), sep="\\t")
    for name in files:
        path = os.path.join(root, name)
        if name in compilers and os.access(path, os.X_OK):
            print("compiler", path, sep="\\t")
        if name in names:
            with open(path, "rb") as file:
                digest = hashlib.sha256(file.read()).hexdigest()
            print("file", digest, path, sep="\\t")
"""


def documented_exit_status(readme: str) -> int:
    """The exit status the generated README promises after SIGTERM: the one
    named in the paragraphs (or list items) that speak of SIGTERM."""
    passages = re.split(r"\n\s*\n|\n- ", readme)
    found = {
        int(status)
        for passage in passages
        if "SIGTERM" in passage
        for status in re.findall(
            r"exit(?:s with)? status(?: is| of)? (-?\d+)", " ".join(passage.split())
        )
    }
    assert len(found) == 1, f"the README documents exit statuses {found or 'none'}"
    return found.pop()


def grace_seconds(project: BakedProject) -> float:
    """How long the service lets in-flight requests finish after SIGTERM: the
    setting's default in .env.example."""
    setting = re.search(
        r"^APP_TIMEOUT_GRACEFUL_SHUTDOWN=(\d+)",
        project.read(".env.example"),
        re.MULTILINE,
    )
    assert setting, ".env.example sets no APP_TIMEOUT_GRACEFUL_SHUTDOWN"
    return float(setting.group(1))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> BakedProject:
    project = bake(tmp_path_factory.mktemp("image"))
    use_package_index(project)
    return project


@pytest.fixture(scope="module")
def image(project: BakedProject, pytestconfig: pytest.Config) -> Iterator[str]:
    """The image, built once for this module, removed afterwards."""
    require_tools("podman", "runc")
    base = ensure_base_image(base_image(project.read("Dockerfile")))
    tag = f"localhost/{project.path.name}-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    build(project.path, tag)
    seconds = time.monotonic() - started
    # Shown as the build finishes, past pytest's capture of the test's output.
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(
            f"\nimage {tag}: {image_size(tag) / 1e6:.0f} MB, built in {seconds:.0f} s"
            f" (podman's layer cache on) from {base}"
        )
    yield tag
    podman("rmi", "--force", tag, check=False)


def start(image: str, name: str) -> str:
    """Run the image detached on a free loopback port; return its URL."""
    port = free_port()
    podman(
        "run",
        *RUNTIME,
        *ulimits(),
        "--detach",
        "--name",
        name,
        "--publish",
        f"127.0.0.1:{port}:8000",
        image,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    state = "running"
    while time.monotonic() < deadline:
        try:
            if http("GET", f"{url}/health/ready", timeout=1)[0] == 200:
                return url
        except OSError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state == "exited":
            break
        time.sleep(0.2)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"container {state}, not ready:\n{logs.stdout}{logs.stderr}")


@pytest.fixture
def container(image: str) -> Iterator[tuple[str, str]]:
    """A running container of the image: (its name, its URL)."""
    name = f"image-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name, start(image, name)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_image_serves_health_and_predictions(container: tuple[str, str]) -> None:
    _, url = container
    assert_classifies_the_samples(url)


def test_image_runs_as_unprivileged_user(
    image: str, container: tuple[str, str]
) -> None:
    name, _ = container
    configured = podman("image", "inspect", "--format", "{{.Config.User}}", image)
    assert configured.stdout.strip() == f"{USER_ID}:{USER_ID}"
    # The service's own process, as the kernel sees it.
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE)
    assert uids, status
    assert set(uids.group(1).split()) == {USER_ID}, status


def test_image_health_check_turns_healthy(container: tuple[str, str]) -> None:
    name, _ = container
    result = podman("healthcheck", "run", name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    health = podman("inspect", "--format", "{{.State.Health.Status}}", name)
    assert health.stdout.strip() == "healthy"


def test_image_holds_no_poetry_compiler_or_tests(
    project: BakedProject, image: str
) -> None:
    # Empty files (tests/__init__.py) would match every empty file.
    wanted = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in [
            *(project.path / "tests").glob("*.py"),
            project.path / "app/main.py",
        ]
        if path.stat().st_size
    }
    assert "conftest.py" in wanted
    result = podman(
        "run",
        *RUNTIME,
        *ulimits(),
        "--rm",
        "--user",
        "0",
        image,
        "python",
        "-c",
        FIND_LEFTOVERS,
        *wanted,
    )
    found = [line.split("\t") for line in result.stdout.splitlines()]
    copies = [
        path
        for kind, *rest in found
        if kind == "file"
        for digest, path in [rest]
        if digest == wanted[Path(path).name]
    ]
    leftovers = {
        "poetry": [row[-1] for row in found if row[0] == "poetry"],
        "compilers": [row[-1] for row in found if row[0] == "compiler"],
        "tests": [path for path in copies if not path.endswith("/app/main.py")],
    }
    assert leftovers == {"poetry": [], "compilers": [], "tests": []}
    # The service's own code is there, installed: the walk does find copies.
    assert [path for path in copies if path.endswith("/app/main.py")], found


def test_image_stops_on_sigterm_with_documented_status(
    project: BakedProject, container: tuple[str, str]
) -> None:
    name, _ = container
    expected = documented_exit_status(project.read("README.md"))
    grace = grace_seconds(project)
    started = time.monotonic()
    podman("kill", "--signal", "TERM", name)
    waited = podman("wait", name, timeout=grace + 30)
    elapsed = time.monotonic() - started
    logs = podman("logs", name)
    status = int(waited.stdout)
    assert status == expected, (
        f"exited {status} after SIGTERM; the README documents {expected}\n"
        f"{logs.stdout}{logs.stderr}"
    )
    assert elapsed < grace, f"stopped after {elapsed:.1f} s; grace is {grace} s"
    assert "Finished server process" in logs.stdout + logs.stderr


def test_tools_missing_fail_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AssertionError, match="apt-get install -y podman"):
        require_tools("podman", "runc")
