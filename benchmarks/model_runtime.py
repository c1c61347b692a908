"""What the model runtime costs: one render against another, and bare FastAPI.

Compares two installed renders (each with its ``.venv``, from ``poetry
install``), for example the JSON-weights model before the ONNX one::

    python -m benchmarks.model_runtime --before ../old-render --after ../iris-classifier

For each render, in turn, round after round: cold start (spawn ``python -m
app`` to the first 200 on ``/health/ready``, against bare FastAPI served by
uvicorn from the same virtualenv), and predictions per second of
``POST /predict/batch`` with 100 and 1,000 instances (one keep-alive client
over loopback, the body encoded once). Also the disk size of the runtime
dependencies the two renders do not share: what the runtime image gains.
``/predict`` under load is ``benchmarks.run``'s serving section.
"""

# ruff: noqa: S603  (it runs the renders' own Python)

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load import running
from benchmarks.measure import median, ratio, tree_cpu_seconds
from benchmarks.serving import floor, service
from toolkit.serve import SETOSA, VIRGINICA

BATCH_SIZES = (100, 1000)

# Run inside a render's virtualenv: the installed size of each distribution that
# the production dependencies pull in, walking their requirements.
RUNTIME_SIZES = """
import json, re, sys
from importlib import metadata
from pathlib import Path

seen, pending = {}, list(sys.argv[1:])
while pending:
    name = re.split(r"[ ;<>=!~\\[]", pending.pop(), maxsplit=1)[0].lower()
    if name in seen:
        continue
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        continue
    files = [Path(dist.locate_file(f)) for f in dist.files or ()]
    seen[name] = sum(f.stat().st_size for f in files if f.is_file())
    pending += [r for r in dist.requires or () if "extra ==" not in r]
print(json.dumps(seen))
"""


def predictions_per_second(
    url: str, pid: int, size: int, seconds: float
) -> tuple[float, float]:
    """POST /predict/batch of ``size`` instances for ``seconds``, one connection:
    predictions per second of wall time, and per CPU-second of the server."""
    body = json.dumps({"instances": [SETOSA, VIRGINICA] * (size // 2)}).encode()
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"content-type": "application/json"}
    requests = 0
    cpu = sum(tree_cpu_seconds(pid))
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        connection.request("POST", "/predict/batch", body, headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200 or answer.count(b'"label"') != size:
            raise SystemExit(f"/predict/batch -> {response.status} {answer[:200]!r}")
        requests += 1
    cpu = sum(tree_cpu_seconds(pid)) - cpu
    connection.close()
    return requests * size / elapsed, ratio(requests * size, cpu)


def runtime_sizes(project: Path, packages: list[str]) -> dict[str, int]:
    python = project / ".venv" / "bin" / "python"
    result = subprocess.run(
        [python, "-c", RUNTIME_SIZES, *packages],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout))


def main_dependencies(project: Path) -> list[str]:
    import tomllib

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    return list(pyproject["project"]["dependencies"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3, help="per batch size")
    options = parser.parse_args(argv)
    renders = {"before": options.before.resolve(), "after": options.after.resolve()}
    logs = Path(tempfile.mkdtemp(prefix="model-runtime-"))
    cold: dict[str, list[float]] = {name: [] for name in [*renders, "bare"]}
    # CPU time used until ready: a busy machine moves it far less than wall time.
    cold_cpu: dict[str, list[float]] = {name: [] for name in cold}
    rates: dict[tuple[str, int], list[tuple[float, float]]] = {
        (name, size): [] for name in renders for size in BATCH_SIZES
    }
    # Bare FastAPI under uvicorn, from the virtualenv of the render after.
    python = renders["after"] / ".venv" / "bin" / "python"
    bare_fastapi = floor("bare", python, "bare_fastapi:app")
    for round_ in range(options.rounds):
        print(f"round {round_ + 1} of {options.rounds}", file=sys.stderr)
        with running(bare_fastapi, logs / "bare.log") as live:
            cold["bare"].append(live.ready_s)
            cold_cpu["bare"].append(sum(tree_cpu_seconds(live.process.pid)))
        for name, project in renders.items():
            with running(service("service", project), logs / f"{name}.log") as live:
                cold[name].append(live.ready_s)
                cold_cpu[name].append(sum(tree_cpu_seconds(live.process.pid)))
                for size in BATCH_SIZES:
                    pid = live.process.pid
                    predictions_per_second(live.url, pid, size, 0.5)  # warm-up
                    rates[name, size].append(
                        predictions_per_second(live.url, pid, size, options.seconds)
                    )

    print("| figure | before | after | after / before |")
    print("| --- | --- | --- | --- |")
    for what, samples in (("wall", cold), ("CPU", cold_cpu)):
        bare = median(samples["bare"])
        before, after = median(samples["before"]), median(samples["after"])
        print(
            f"| cold start, {what} s (bare FastAPI {bare:.3f}) | {before:.3f}"
            f" ({ratio(before, bare):.2f}x bare) | {after:.3f}"
            f" ({ratio(after, bare):.2f}x bare) | {ratio(after, before):.2f} |"
        )
    for size in BATCH_SIZES:
        for index, unit in enumerate(("s", "server CPU-s")):
            before = median([rate[index] for rate in rates["before", size]])
            after = median([rate[index] for rate in rates["after", size]])
            print(
                f"| /predict/batch of {size:,}, predictions/{unit} | {before:,.0f}"
                f" | {after:,.0f} | {ratio(after, before):.2f} |"
            )
    sizes = {
        name: runtime_sizes(project, main_dependencies(project))
        for name, project in renders.items()
    }
    added = {k: v for k, v in sizes["after"].items() if k not in sizes["before"]}
    mib = 1024 * 1024
    totals = {name: sum(found.values()) / mib for name, found in sizes.items()}
    print(
        f"\nRuntime dependencies on disk: before {totals['before']:.0f} MiB,"
        f" after {totals['after']:.0f} MiB; added, in MiB:"
        + ",".join(f" {k} {v / mib:.1f}" for k, v in sorted(added.items()))
    )
    print(f"Server logs: {logs}")


if __name__ == "__main__":
    main()
