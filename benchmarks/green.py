"""Time to green, and the generated test suite: how long a user waits from
rendering to a passing suite (render, ``poetry install``, the generated tests,
each timed), with a cold and a warm package cache; then the suite alone."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import environment, median, run_checked
from toolkit.render import BakedProject, bake, poetry_install


def pytest_seconds(output: str) -> float:
    match = re.search(r" in ([\d.]+)s", output)
    return float(match.group(1)) if match else float("nan")


def time_to_green(workdir: Path, name: str) -> tuple[dict[str, float], BakedProject]:
    """Render, ``poetry install``, run the generated tests: each stage timed."""
    started = time.perf_counter()
    project = bake(workdir / name)
    rendered = time.perf_counter()
    bin_dir = poetry_install(project)
    installed = time.perf_counter()
    tests_s, output = run_checked([bin_dir / "python", "-m", "pytest"], project.path)
    return {
        "total_s": time.perf_counter() - started,
        "render_s": rendered - started,
        "install_s": installed - rendered,
        "tests_s": tests_s,
        "pytest_reported_s": pytest_seconds(output),
    }, project


def measure_time_to_green(workdir: Path) -> tuple[dict[str, Any], BakedProject]:
    """Cold: an empty Poetry cache, no pip cache. Warm: the usual cache, filled."""
    cache = workdir / "empty-poetry-cache"
    cache.mkdir()
    with environment(POETRY_CACHE_DIR=str(cache), PIP_NO_CACHE_DIR="1"):
        cold, _ = time_to_green(workdir, "green-cold")
    time_to_green(workdir, "green-fill-cache")  # the usual cache may be empty
    warm, project = time_to_green(workdir, "green-warm")
    return {"cold": cold, "warm": warm}, project


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
