"""Time to green, and the generated test suite: how long a user waits from
rendering to a passing suite (render, ``poetry install``, the generated tests,
each timed), with a cold and a warm package cache, and the same with uv
(``uv sync``, ``uv run pytest``) in the same run; then the suite alone."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from uv import find_uv_bin

from benchmarks.measure import environment, median, run_checked
from toolkit.render import BakedProject, bake, package_index_url, poetry_install


def pytest_seconds(output: str) -> float:
    match = re.search(r" in ([\d.]+)s", output)
    return float(match.group(1)) if match else float("nan")


def time_to_green(
    workdir: Path, name: str, tool: str = "poetry"
) -> tuple[dict[str, float], BakedProject]:
    """Render, install with ``tool``, run the generated tests: each stage timed."""
    started = time.perf_counter()
    project = bake(workdir / name)
    rendered = time.perf_counter()
    if tool == "uv":
        uv = find_uv_bin()
        # uv reads the index pip is configured with, as the uv test does.
        with environment(UV_DEFAULT_INDEX=package_index_url()):
            run_checked([uv, "sync"], project.path)
            installed = time.perf_counter()
            tests_s, output = run_checked([uv, "run", "pytest"], project.path)
    else:
        bin_dir = poetry_install(project)
        installed = time.perf_counter()
        tests_s, output = run_checked(
            [bin_dir / "python", "-m", "pytest"], project.path
        )
    return {
        "total_s": time.perf_counter() - started,
        "render_s": rendered - started,
        "install_s": installed - rendered,
        "tests_s": tests_s,
        "pytest_reported_s": pytest_seconds(output),
    }, project


def measure_time_to_green(workdir: Path) -> tuple[dict[str, Any], BakedProject]:
    """Cold: an empty Poetry or uv cache, no pip cache. Warm: the usual cache,
    filled. Poetry, then uv, in the same run."""
    results: dict[str, Any] = {}
    warmed: dict[str, BakedProject] = {}
    for tool in ("poetry", "uv"):
        cache = workdir / f"empty-{tool}-cache"
        cache.mkdir()
        cold_cache = {"POETRY_CACHE_DIR": str(cache), "UV_CACHE_DIR": str(cache)}
        with environment(**cold_cache, PIP_NO_CACHE_DIR="1"):
            results[f"{tool} cold"], _ = time_to_green(workdir, f"{tool}-cold", tool)
        time_to_green(workdir, f"{tool}-fill-cache", tool)  # may start empty
        results[f"{tool} warm"], warmed[tool] = time_to_green(
            workdir, f"{tool}-warm", tool
        )
    return results, warmed["poetry"]


def measure_tests(project: Path, runs: int) -> dict[str, Any]:
    python = project / ".venv" / "bin" / "python"
    walls, reported = [], []
    for _ in range(runs):
        wall, output = run_checked([python, "-m", "pytest"], project)
        walls.append(wall)
        reported.append(pytest_seconds(output))
    return {
        "runs": runs,
        "wall_s": median(walls),
        "pytest_reported_s": median(reported),
        "samples_wall_s": walls,
    }
