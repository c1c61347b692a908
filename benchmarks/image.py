"""Build time and size of the default render's container image, against a floor.

From the repository root, with ``requirements-dev.txt`` installed and podman,
runc and mmdebstrap on the machine (``apt-get install podman runc mmdebstrap``)::

    python -m benchmarks.image [--rounds 3]

The floor is the smallest Dockerfile a user could write for the same service:
one stage on the same base image that copies the same files and runs
``pip install .`` (the same runtime dependencies, the service as a package).
Both are built with ``podman build --no-cache`` in turn (A B A B ...), each with
a cache mount for its package downloads, so the first round downloads and later
rounds mostly do not. Besides the wall time, each build's CPU time (podman and
the build steps it runs, user and system) is counted: a busy neighbour moves it
much less. Where the base image cannot be
pulled, toolkit/image.py builds a stand-in from Debian packages; the sizes then
include that stand-in rather than the official ``python:X-slim``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.measure import children_cpu_seconds
from toolkit.image import (
    RUNTIME,
    base_image,
    ensure_base_image,
    image_size,
    podman,
    require_tools,
)
from toolkit.render import BakedProject, bake, use_package_index

FLOOR_DOCKERFILE = """\
FROM {base}
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY app ./app
RUN --mount=type=cache,target=/root/.cache/pip pip install .
CMD ["python", "-m", "app"]
"""


def build_seconds(context: Path, dockerfile: Path, tag: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one uncached build."""
    cpu = children_cpu_seconds()
    started = time.monotonic()
    podman(
        "build",
        *RUNTIME,
        "--no-cache",
        "--layers=false",  # keep no intermediate images from round to round
        "--format",
        "docker",
        "--file",
        dockerfile,
        "--tag",
        tag,
        context,
        timeout=1800,
    )
    return time.monotonic() - started, children_cpu_seconds() - cpu


def render(workdir: Path) -> BakedProject:
    """The default render, its Poetry pointed at the index pip uses (as the
    slow tests do), and the floor's Dockerfile beside its own."""
    project = bake(workdir)
    use_package_index(project)
    base = base_image(project.read("Dockerfile"))
    (project.path / "Dockerfile.floor").write_text(FLOOR_DOCKERFILE.format(base=base))
    return project


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    require_tools("podman", "runc")
    with tempfile.TemporaryDirectory(prefix="image-benchmark-") as tmp:
        project = render(Path(tmp))
        base = base_image(project.read("Dockerfile"))
        print(f"base image: {ensure_base_image(base)}", flush=True)
        rows = {
            "service (the generated Dockerfile)": project.path / "Dockerfile",
            "floor: one stage, pip install": project.path / "Dockerfile.floor",
        }
        tags = {name: f"localhost/image-benchmark-{i}" for i, name in enumerate(rows)}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        sizes: dict[str, int] = {}
        try:
            for round_ in range(1, options.rounds + 1):
                for name, dockerfile in rows.items():
                    wall, cpu = build_seconds(project.path, dockerfile, tags[name])
                    runs[name].append((wall, cpu))
                    sizes[name] = image_size(tags[name])
                    # Untagged by the next round's build, it would stay behind.
                    podman("rmi", tags[name])
                    print(
                        f"round {round_}, {name}: {wall:.1f} s, CPU {cpu:.1f} s",
                        flush=True,
                    )
        finally:
            for tag in tags.values():
                podman("rmi", "--force", tag, check=False)
    base_size = image_size(base)

    def later(name: str, column: int) -> float:
        """Median over the rounds after the first (their downloads are cached)."""
        return statistics.median(run[column] for run in runs[name][1:] or runs[name])

    print()
    print(
        "| image | build, first round | build, later rounds (median)"
        " | CPU, later rounds | size MB | added to the base MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in rows:
        print(
            f"| {name} | {runs[name][0][0]:.1f} s | {later(name, 0):.1f} s"
            f" | {later(name, 1):.1f} s | {sizes[name] / 1e6:.0f}"
            f" | {(sizes[name] - base_size) / 1e6:.0f} |"
        )
    print(f"| base image | | | | {base_size / 1e6:.0f} | |")
    service, floor = rows
    print()
    print(
        f"service / floor: build {later(service, 0) / later(floor, 0):.2f}x,"
        f" CPU {later(service, 1) / later(floor, 1):.2f}x,"
        f" size {sizes[service] / sizes[floor]:.2f}x"
    )


if __name__ == "__main__":
    main()
