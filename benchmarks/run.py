"""Measure the template and the service it renders against floors, in one run.

From the repository root, with ``requirements-dev.txt`` installed and ``wrk`` on
the PATH (Debian: ``apt-get install wrk``)::

    python -m benchmarks.run

It prints tables and writes every figure as JSON to ``benchmarks/results/``.
Each serving figure is the median of ``--rounds`` rounds. A round starts every
server, then loads each in turn for a slice of ``--duration`` (A B C A B C ...),
so that a busy neighbour hurts every row alike. benchmarks/README.md says
what each row and floor means. The sections live in modules of their own:
``render`` (render time), ``green`` (time to green, the generated tests),
``serving`` (the rows and the cold start), loaded as ``load`` says; ``report``
writes the tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.green import measure_tests, measure_time_to_green
from benchmarks.load import compute_ratios, measure_serving
from benchmarks.measure import load_average, machine, package_versions
from benchmarks.render import measure_render
from benchmarks.report import format_report, targets
from benchmarks.serving import (
    BASELINE,
    OTHER,
    RATIOS,
    ROWS,
    heavy_project,
    measure_cold_start,
    otlp_sink,
    servers_under_test,
)
from toolkit.render import bake, poetry_install

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = ("render", "green", "tests", "cold", "serving")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="serving runs per app")
    parser.add_argument(
        "--duration", type=float, default=10, help="seconds of load per app per round"
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=5,
        help="each round loads the apps in turn, this many times, for an equal"
        " share of --duration each",
    )
    parser.add_argument("--warmup", type=float, default=2, help="seconds before it")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--render-runs", type=int, default=7)
    parser.add_argument("--cold-start-runs", type=int, default=7)
    parser.add_argument("--test-runs", type=int, default=3)
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated subset of: %(default)s",
    )
    parser.add_argument(
        "--servers",
        help="serve only these rows, comma-separated keys: " + ", ".join(ROWS),
    )
    parser.add_argument(
        "--project",
        type=Path,
        help="measure this installed render (with its .venv) instead of a new one",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help=f"another installed render, served in turn as '{BASELINE}' for an A/B",
    )
    parser.add_argument(
        "--other",
        type=Path,
        help=f"a third installed render, served in turn as '{OTHER}'",
    )
    parser.add_argument("--workdir", type=Path, help="keep renders and logs here")
    parser.add_argument("--output", type=Path, help="the JSON file to write")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    sections = set(options.sections.split(","))
    if "serving" in sections and shutil.which("wrk") is None:
        raise SystemExit("wrk is not on the PATH: apt-get install wrk")
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="template-benchmark-"))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {k: str(v) for k, v in vars(options).items()},
    }

    def step(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    if "render" in sections:
        step("render: this template and a one-file one, in turn")
        results["render"] = measure_render(workdir, options.render_runs)
    if options.project:
        project = options.project.resolve()
    elif "green" in sections:
        step("time to green: cold package cache, then warm")
        results["time_to_green"], baked = measure_time_to_green(workdir)
        project = baked.path
    else:
        step("render and install a project to measure")
        baked = bake(workdir / "project")
        poetry_install(baked)
        project = baked.path
    results["project"] = str(project)
    results["versions"] = package_versions(project)
    if "tests" in sections:
        step("the generated test suite")
        results["tests"] = measure_tests(project, options.test_runs)
    if "cold" in sections:
        step("cold start")
        results["cold_start"] = measure_cold_start(
            project, options.cold_start_runs, logs
        )
    if "serving" in sections:
        step("serving, each app in turn")
        baseline = options.baseline.resolve() if options.baseline else None
        keys = options.servers.split(",") if options.servers else list(ROWS)
        heavy = None
        if {"heavy", "heavy-batching"} & set(keys):
            step("the heavy model: a copy of the render serving an ONNX MLP")
            heavy = heavy_project(project, workdir)
        other = options.other.resolve() if options.other else None
        with otlp_sink() as collector:
            servers = servers_under_test(project, baseline, heavy, other, collector)
            servers = [server for server in servers if server.key in keys]
            results["serving"] = measure_serving(servers, options, logs)
        results["ratios"] = compute_ratios(results["serving"], RATIOS)
    results["targets"] = targets(results)
    results["machine"]["load_average_at_end"] = load_average()

    output = options.output or RESULTS_DIR / (
        datetime.now().strftime("%Y%m%d-%H%M%S") + ".json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    info = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    print(format_report(results))
    print(
        f"\n{info['cpus']} CPUs, Python {info['python']}, {info['wrk']}; {versions}."
        f"\nLoad average {info['load_average_at_start']:.2f} at start,"
        f" {info['load_average_at_end']:.2f} at end. JSON: {output}"
        f"\nRenders and server logs: {workdir}"
    )


if __name__ == "__main__":
    main()
