"""Build and run a rendered project's container image with podman, no daemon needed.

The Dockerfile's base image is used as it is where it exists or can be pulled.
Where it cannot (no access to a container registry), a stand-in is built from
Debian packages with mmdebstrap and imported under the base image's name: a
root file system with python3 and venv, pip and setuptools installed by pip,
``python`` on the PATH, this machine's CA bundle, and no ``EXTERNALLY-MANAGED``
marker, which is what the Dockerfile expects of ``python:X-slim``. Only the base
is a stand-in; the Dockerfile is built unchanged.

    python -m toolkit.image  # make the default render's base image available
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dockerfile_parse import DockerfileParser

from toolkit.render import bake

INSTALL = "apt-get install -y podman runc mmdebstrap"
# runc: podman's default runtime (crun) cannot create containers under a hybrid
# cgroup hierarchy, as in some sandboxes; runc can, here and on GitHub's runners.
RUNTIME = ("--runtime", "runc")
# The Debian release whose python3 is each Python version.
DEBIAN_RELEASES = {"3.11": "bookworm"}
SLIM_IMAGE = re.compile(r"^(?:docker\.io/(?:library/)?)?python:(\d+\.\d+)-slim$")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DESCRIPTION = "org.opencontainers.image.description"


def require_tools(*tools: str) -> None:
    """Fail, saying how to install them, when any of these commands is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise AssertionError(
            f"{', '.join(missing)} not found: install with `{INSTALL}`"
            " (as root on Debian or Ubuntu)"
        )


def podman(
    *args: str | Path, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run podman; with ``check``, fail with its output unless it succeeds."""
    result = subprocess.run(
        ["podman", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(map(str, args))} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def ulimits() -> list[str]:
    """Explicit limits for a container: podman's defaults copy the host's, which
    a sandbox may refuse to set inside a container ("error setting rlimits");
    these modest ones are enough for the service and allowed everywhere tried."""
    return ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def base_image(dockerfile: str) -> str:
    """The first stage's base image, with the global ARG defaults substituted."""
    parser = DockerfileParser(fileobj=io.BytesIO(dockerfile.encode()))
    if not parser.parent_images:
        raise AssertionError("the Dockerfile has no FROM line")
    return str(parser.parent_images[0])


def ensure_base_image(name: str) -> str:
    """Make ``name`` available locally; say what it is: the real image or a
    stand-in."""
    name = qualified(name)
    if podman("image", "exists", name, check=False).returncode != 0:
        pulled = podman("pull", "--quiet", name, check=False, timeout=900)
        if pulled.returncode != 0:
            build_stand_in(name)
    labels = podman("image", "inspect", "--format", "{{json .Labels}}", name)
    description = (json.loads(labels.stdout) or {}).get(DESCRIPTION, "")
    return description if description.startswith("Stand-in") else f"{name}, pulled"


def debian_sources(release: str) -> list[str]:
    """This machine's Debian mirrors, as one-line sources for ``release``.

    Read from apt's own configuration at run time, so the suite works behind
    whatever mirror the machine uses. Entries for the host's release (and its
    -updates and -security suites) are kept, with the release name swapped.
    """
    host_release = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            host_release = line.partition("=")[2].strip().strip('"')
    entries: list[tuple[str, str, str]] = []  # (URI, suite, components)
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        if path.suffix == ".list":
            for line in path.read_text().splitlines():
                words = re.sub(r"\[.*?\]", "", line.partition("#")[0]).split()
                if len(words) >= 4 and words[0] == "deb":
                    entries.append((words[1], words[2], " ".join(words[3:])))
        elif path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", path.read_text()):
                fields = {
                    key.strip().lower(): value.strip()
                    for key, _, value in (
                        line.partition(":")
                        for line in stanza.splitlines()
                        if ":" in line and not line.startswith(("#", " ", "\t"))
                    )
                }
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        entries.append((uri, suite, fields.get("components", "")))
    sources = [
        f"deb {uri} {release}{suite.removeprefix(host_release)} {components}"
        for uri, suite, components in entries
        if host_release
        and (suite == host_release or suite.startswith(f"{host_release}-"))
    ]
    if not sources:
        raise AssertionError(
            "no Debian mirror found in /etc/apt/sources.list*: the stand-in base"
            " image is built from Debian packages (or make the real base pullable)"
        )
    return sources


def build_stand_in(name: str) -> None:
    """Build a stand-in for ``python:X-slim`` from Debian packages, as ``name``."""
    match = SLIM_IMAGE.match(name)
    if match is None or match.group(1) not in DEBIAN_RELEASES:
        valid = ", ".join(f"python:{v}-slim" for v in DEBIAN_RELEASES)
        raise AssertionError(
            f"'{name}' cannot be pulled and has no stand-in: one can be built"
            f" for {valid} (Debian's own python3)"
        )
    require_tools("podman", "mmdebstrap")
    release = DEBIAN_RELEASES[match.group(1)]
    with tempfile.TemporaryDirectory(prefix="stand-in-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        command = [
            "mmdebstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,python-is-python3,ca-certificates",
            # A merged /usr without the usrmerge package and the Perl it needs.
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            # Slim, as the official image is: no documentation or translations.
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            # pip may install into the system Python, as in the official image.
            '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
            # pip and setuptools installed by pip itself (from the wheels that
            # python3-venv brings), not as Debian packages: as in the official
            # image, `pip uninstall` can remove them.
            '--customize-hook=chroot "$1" sh -c'
            " 'wheel=$(echo /usr/share/python-wheels/pip-*.whl)"
            ' && python "$wheel/pip" install --no-index'
            " --find-links /usr/share/python-wheels pip setuptools'",
            # Trust what this machine trusts (an egress proxy's CA, where any).
            f'--customize-hook=cp {CA_BUNDLE} "$1{CA_BUNDLE}"',
            release,
            str(rootfs),
            *debian_sources(release),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=900, check=False
        )
        if result.returncode != 0:
            raise AssertionError(
                f"mmdebstrap exited {result.returncode}\n{result.stderr[-4000:]}"
            )
        podman(
            "import",
            # Python's own tools and pip's dependencies (requests, certifi) read
            # these, so every one trusts the bundle above.
            "--change",
            f"ENV SSL_CERT_FILE={CA_BUNDLE}",
            "--change",
            f"ENV REQUESTS_CA_BUNDLE={CA_BUNDLE}",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            'CMD ["python3"]',
            "--change",
            f'LABEL {DESCRIPTION}="Stand-in for {name}, from Debian {release}"',
            rootfs,
            qualified(name),
        )


def qualified(name: str) -> str:
    """The name a short ``python:X`` resolves to when pulled."""
    return f"docker.io/library/{name}" if "/" not in name else name


def build(context: Path, tag: str) -> None:
    """``podman build`` as Docker would: the Docker format keeps HEALTHCHECK."""
    podman("build", *RUNTIME, "--format", "docker", "--tag", tag, context, timeout=1800)


def image_size(tag: str) -> int:
    """The image's size in bytes, uncompressed, as ``podman images`` shows it."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)


if __name__ == "__main__":
    require_tools("podman")
    with tempfile.TemporaryDirectory() as tmp:
        name = base_image(bake(Path(tmp)).read("Dockerfile"))
    print(ensure_base_image(name))
