"""What load shedding does for the requests let in, at several times capacity.

The service serves the heavy MLP (heavy/build.py, about 1 ms a row alone) with
its defaults, batching and ``APP_MAX_MODEL_REQUESTS`` included, and logs a JSON
line per request. wrk loads ``POST /predict`` at each number of connections
in turn; the service's own log lines then give, per load, the latency of the
requests let in (status 200) and of those turned away (503), as the service
measured them from the head read to the answer. A second pass does the same
with shedding out of the way (a limit above every load), for comparison::

    python -m benchmarks.overload --project ../iris-classifier

``--project`` is an installed render (its ``.venv``). Figures go to
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.load import wrk
from benchmarks.serving import heavy_project
from toolkit.serve import serving


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def durations(log: Path, start: int) -> dict[int, list[float]]:
    """Milliseconds of each /predict request logged after byte ``start``, by status."""
    by_status: dict[int, list[float]] = {}
    with log.open() as lines:
        lines.seek(start)
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("path") == "/predict":
                by_status.setdefault(record["status"], []).append(record["duration_ms"])
    return by_status


def measure(
    project: Path, workdir: Path, loads: Sequence[int], seconds: int, limit: int | None
) -> list[dict[str, Any]]:
    python = project / ".venv" / "bin" / "python"
    env = {
        "APP_MODEL_PATH": str(project / "mlp.onnx"),
        "APP_LOG_JSON": "true",
        "APP_LIMIT_CONCURRENCY": "4096",
    }
    if limit is not None:
        env["APP_MAX_MODEL_REQUESTS"] = str(limit)
    log = workdir / f"service-{limit}.log"
    rows = []
    with serving([python, "-m", "app"], project, log, env, open_files=8192) as server:
        url = f"{server.url}/predict"
        options = argparse.Namespace(threads=2, connections=loads[0])
        wrk(url, options, 3, None)  # warm up
        for connections in loads:
            start = log.stat().st_size
            options.connections = connections
            figures = wrk(url, options, seconds, None)
            by_status = durations(log, start)
            let_in, turned_away = by_status.get(200, []), by_status.get(503, [])
            rows.append(
                {
                    "connections": connections,
                    "rps": figures["rps"],
                    "ok": len(let_in),
                    "shed": len(turned_away),
                    "ok_p50_ms": percentile(let_in, 0.5),
                    "ok_p99_ms": percentile(let_in, 0.99),
                    "shed_p99_ms": percentile(turned_away, 0.99),
                    "shed_max_ms": max(turned_away, default=float("nan")),
                    "other": {
                        k: len(v) for k, v in by_status.items() if k not in (200, 503)
                    },
                }
            )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--loads", default="64,128,256", help="connections, in turn")
    parser.add_argument("--seconds", type=int, default=10)
    options = parser.parse_args(argv)
    loads = [int(n) for n in options.loads.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        project = heavy_project(options.project.resolve(), workdir)
        (project / ".venv").symlink_to((options.project / ".venv").resolve())
        results = {
            "shedding at its default": measure(
                project, workdir, loads, options.seconds, None
            ),
            "no shedding": measure(project, workdir, loads, options.seconds, 100_000),
        }
    print(
        "| service | connections | req/s | let in | turned away | let in p50 ms"
        " | let in p99 ms | turned away p99 / max ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rows in results.items():
        for row in rows:
            print(
                f"| {name} | {row['connections']} | {row['rps']:,.0f} | {row['ok']:,}"
                f" | {row['shed']:,} | {row['ok_p50_ms']:.1f} | {row['ok_p99_ms']:.1f}"
                f" | {row['shed_p99_ms']:.2f} / {row['shed_max_ms']:.2f} |"
            )
    capacity = results["shedding at its default"][0]["ok_p99_ms"]
    for row in results["shedding at its default"][1:]:
        print(
            f"at {row['connections']} connections, the let-in p99 is"
            f" {row['ok_p99_ms'] / capacity:.2f}x the p99 at {loads[0]}"
        )


if __name__ == "__main__":
    main()
