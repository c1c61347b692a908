"""Measure the rendered service against the servers a user would pick instead.

From the repository root, with ``wrk`` on the PATH and an installed render::

    python -m benchmarks.peers --project ../iris-classifier --rounds 4

The peers (MLServer, KServe, LitServe) run the same ONNX files as the service
(the render's Iris sample and benchmarks/heavy/build.py's MLP) in ONNX Runtime
with one thread, one process each (LitServe: two). Each is installed when it
runs, into its own virtualenv under ``--workdir`` (kept between runs), with the
ONNX Runtime version of the render. All servers run at once; a round loads each
row in turn, a slice at a time, as ``benchmarks.run`` does, with its wrk
wrapper, slices and CPU accounting (``benchmarks.load``). Before any load, each
row's answer for the Iris sample's first row must equal the service's
``/predict``.
benchmarks/README.md ("Peers") says what each row is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.load import WRK_SCRIPT, combine_slices, measure_slice, wrk
from benchmarks.measure import (
    load_average,
    machine,
    median,
    package_versions,
    process_tree,
    ratio,
    run_checked,
    tree_rss_mib,
)
from benchmarks.run import RESULTS_DIR
from benchmarks.serving import FLOORS_DIR, HEAVY_DIR
from toolkit.serve import SETOSA, Running, free_port, http, serving

HERE = Path(__file__).resolve().parent
V1_SCRIPT = HERE / "v1.lua"
V2_SCRIPT = HERE / "v2.lua"
READY_TIMEOUT = 60.0
LOG_PROBE_REQUESTS = 20
# MLServer 1.7.1 fails to load a model with uvloop 0.22 and later ("There is no
# current event loop"), so its virtualenv pins the last uvloop it works with.
PEER_REQUIREMENTS = {
    "mlserver": ["mlserver==1.7.1", "uvloop==0.21.0"],
    "kserve": ["kserve==0.21.0"],
    "litserve": ["litserve==0.2.19"],
}
# MLServer batches only when both are set, and only with max_batch_time > 0.
ADAPTIVE_BATCHING = {"max_batch_size": 64, "max_batch_time": 0.001}
ROW = [SETOSA[name] for name in SETOSA]  # the same row as the Lua scripts'


# -- the servers ---------------------------------------------------------------


@dataclass
class Peer:
    """One server process: how to start it on a port, and how to tell it is up."""

    key: str
    command: Callable[[int], list[str]]
    cwd: Path
    ready: str
    env: Callable[[int], dict[str, str]] = field(default=lambda port: {})
    logging: str = ""


@dataclass
class Row:
    """One line of the table: a route of a peer, loaded at some connections.

    Duck-types ``benchmarks.load.Server`` for ``measure_slice``.
    """

    key: str
    name: str
    peer: str
    model: str  # "iris" or "heavy"
    protocol: str  # "predict", "v1", "v2" or "floor"
    path: str
    connections: int
    batch: int | None = None

    @property
    def script(self) -> Path:
        return {"v1": V1_SCRIPT, "v2": V2_SCRIPT}.get(self.protocol, WRK_SCRIPT)


def body(protocol: str) -> Any:
    """What the Lua script of that protocol sends, as JSON."""
    if protocol == "v1":
        return {"instances": [ROW]}
    if protocol == "v2":
        tensor = {"name": "features", "shape": [1, 4], "datatype": "FP32"}
        return {"inputs": [{**tensor, "data": ROW}]}
    return SETOSA


def answer_of(protocol: str, answer: Any) -> tuple[str, list[float]]:
    """The label and the probabilities in an answer of that protocol."""
    if protocol == "v1":
        answer = answer["predictions"][0]
    if protocol == "v2":
        outputs = {output["name"]: output["data"] for output in answer["outputs"]}
        label = outputs["label"][0]
        return label[0] if isinstance(label, list) else label, outputs["probabilities"]
    return answer["label"], list(answer["probabilities"].values())


@contextlib.contextmanager
def started(peer: Peer, log: Path) -> Iterator[Running]:
    """Run a peer until its readiness path answers 200; stop it on the way out,
    and whatever processes it started (LitServe starts two)."""
    port = free_port()
    children: list[int] = []
    try:
        with serving(
            peer.command(port),
            peer.cwd,
            log,
            peer.env(port),
            port=port,
            ready=peer.ready,
            timeout=READY_TIMEOUT,
            interval=0.05,
        ) as live:
            try:
                yield live
            finally:
                children = list(process_tree(live.process.pid))[1:]
    except AssertionError as error:
        raise SystemExit(f"{peer.key}: {error}") from None
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def virtualenv(workdir: Path, name: str, requirements: Sequence[str]) -> Path:
    """A virtualenv with these requirements, made once and kept; its python."""
    venv = workdir / "venvs" / name
    python = venv / "bin" / "python"
    marker = venv / "benchmark-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    run_checked([sys.executable, "-m", "venv", "--clear", venv], venv.parent)
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run_checked([*pip, *requirements], venv.parent)
    marker.write_text(wanted)
    return python


def project_python(project: Path, code: str, *args: str) -> str:
    python = project / ".venv" / "bin" / "python"
    return run_checked([python, "-c", code, *args], project)[1].strip()


def model_name(project: Path, path: Path) -> str:
    code = (
        "import sys, onnxruntime as o; print(o.InferenceSession(sys.argv[1])"
        ".get_modelmeta().custom_metadata_map['name'])"
    )
    return project_python(project, code, str(path))


def heavy_artifact(project: Path, workdir: Path) -> Path:
    """benchmarks/heavy/build.py's MLP, signed with the metadata the service
    verifies (build.py does it with the render's own app.artifact)."""
    models = workdir / "models"
    models.mkdir(parents=True, exist_ok=True)
    python = project / ".venv" / "bin" / "python"
    try:
        project_python(project, "import onnx")
    except SystemExit:
        run_checked([python, "-m", "pip", "install", "--quiet", "onnx"], project)
    heavy = models / "heavy.onnx"
    run_checked([python, HEAVY_DIR / "build.py", heavy, project], project)
    return heavy


def peers_and_rows(
    project: Path, workdir: Path, chosen: set[str]
) -> tuple[list[Peer], list[Row]]:
    python = str(project / ".venv" / "bin" / "python")
    models = {"iris": project / "app" / "model.onnx"}
    models["heavy"] = heavy_artifact(project, workdir)
    names = {model: model_name(project, path) for model, path in models.items()}
    runtime = "onnxruntime==" + project_python(
        project, "import onnxruntime; print(onnxruntime.__version__)"
    )
    peers: list[Peer] = []
    rows: list[Row] = []

    def add_rows(peer: str, label: str, model: str, *routes: tuple[str, str]) -> None:
        connections = (64, 1) if model == "heavy" else (64,)
        for count in connections:
            for protocol, path in routes:
                key = f"{peer}-{protocol}-c{count}"
                name = f"{label}, {path.replace(names[model], '{name}')}"
                rows.append(Row(key, name, peer, model, protocol, path, count))

    def v2(model: str) -> str:
        return f"/v2/models/{names[model]}/infer"

    if "service" in chosen:
        for model in models:
            key = f"service-{model}"

            def env(port: int, model: str = model) -> dict[str, str]:
                return {"APP_PORT": str(port), "APP_MODEL_PATH": str(models[model])}

            peers.append(
                Peer(
                    key,
                    lambda port: [python, "-m", "app"],
                    project,
                    "/health/ready",
                    env,
                    "one line per request (APP_LOG_LEVEL=info)",
                )
            )
            add_rows(key, "service", model, ("predict", "/predict"), ("v2", v2(model)))
    if "bare" in chosen:

        def bare(port: int) -> list[str]:
            return [python, "-m", "uvicorn", "bare_fastapi:app", "--port", str(port)]

        peers.append(
            Peer("bare", bare, FLOORS_DIR, "/health/ready", logging="access log")
        )
        name = "floor: bare FastAPI (constant answer), /predict"
        for count, model in ((64, "iris"), (1, "heavy")):
            rows.append(
                Row(f"bare-c{count}", name, "bare", model, "floor", "/predict", count)
            )
    if "bare-model" in chosen:
        for model, path in models.items():
            key = f"bare-model-{model}"

            def uvicorn(port: int) -> list[str]:
                return [python, "-m", "uvicorn", "bare_model:app", "--port", str(port)]

            def model_env(port: int, path: Path = path) -> dict[str, str]:
                paths = os.pathsep.join(map(str, (HERE, FLOORS_DIR)))
                return {"APP_MODEL_PATH": str(path), "PYTHONPATH": paths}

            peers.append(
                Peer(key, uvicorn, HERE, "/health/ready", model_env, "access log")
            )
            label = "floor: bare FastAPI + uvicorn, same model"
            add_rows(key, label, model, ("predict", "/predict"))
    if "mlserver" in chosen:
        mlserver = virtualenv(
            workdir, "mlserver", [*PEER_REQUIREMENTS["mlserver"], runtime]
        )
        for model, path in models.items():
            for batching in (False, True):
                key = f"mlserver-{model}" + ("-batching" if batching else "")
                label = "MLServer 1.7.1, adaptive batching " + (
                    "on (64, 1 ms)" if batching else "off"
                )
                peers.append(
                    mlserver_peer(key, mlserver, workdir, names[model], path, batching)
                )
                add_rows(key, label, model, ("v2", v2(model)))
    if "kserve" in chosen:
        kserve = virtualenv(workdir, "kserve", [*PEER_REQUIREMENTS["kserve"], runtime])
        for model, path in models.items():
            key = f"kserve-{model}"

            def command(port: int, path: Path = path) -> list[str]:
                return [
                    str(kserve),
                    str(HERE / "kserve_server.py"),
                    f"--model_path={path}",
                    f"--http_port={port}",
                    f"--grpc_port={free_port()}",
                    "--enable_grpc=false",
                    "--workers=1",
                ]

            peers.append(
                Peer(
                    key,
                    command,
                    workdir,
                    f"/v2/models/{names[model]}/ready",
                    lambda port: {"PYTHONPATH": str(HERE)},
                    "access log + timing lines (`--enable_latency_logging`)",
                )
            )
            add_rows(
                key,
                "KServe 0.21 ModelServer",
                model,
                ("v1", f"/v1/models/{names[model]}:predict"),
                ("v2", v2(model)),
            )
    if "litserve" in chosen:
        litserve = virtualenv(
            workdir, "litserve", [*PEER_REQUIREMENTS["litserve"], runtime]
        )
        for model, path in models.items():
            key = f"litserve-{model}"

            def serve(port: int, path: Path = path) -> list[str]:
                script = HERE / "litserve_server.py"
                return [str(litserve), str(script), str(path), str(port)]

            peers.append(
                Peer(
                    key,
                    serve,
                    workdir,
                    "/health",
                    lambda port: {"PYTHONPATH": str(HERE)},
                    "access log (uvicorn's, at INFO)",
                )
            )
            label = "LitServe 0.2.19 (API and inference processes)"
            add_rows(key, label, model, ("predict", "/predict"))
    order = {"c64-iris": 0, "c64-heavy": 1, "c1-heavy": 2}
    rows.sort(key=lambda row: order[f"c{row.connections}-{row.model}"])
    return peers, rows


def mlserver_peer(
    key: str, python: Path, workdir: Path, name: str, path: Path, batching: bool
) -> Peer:
    """``mlserver start`` of a folder holding this model's settings.

    One process: ``parallel_workers`` 0 runs inference in the server's own
    process (MLServer's default, 1, adds a worker process). gRPC and metrics
    get ports of their own, and stay on as by default.
    """
    folder = workdir / "mlserver" / key

    def command(port: int) -> list[str]:
        (folder / "model").mkdir(parents=True, exist_ok=True)
        settings = {
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "parallel_workers": 0,
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        model = {
            "name": name,
            "implementation": "mlserver_runtime.OnnxRuntime",
            "parameters": {"uri": str(path), "version": "1"},
            **(ADAPTIVE_BATCHING if batching else {}),
        }
        (folder / "model" / "model-settings.json").write_text(json.dumps(model))
        return [str(python.parent / "mlserver"), "start", str(folder)]

    return Peer(
        key,
        command,
        workdir,
        f"/v2/models/{name}/ready",
        lambda port: {"PYTHONPATH": str(HERE)},
        "access log (uvicorn's, at INFO)",
    )


# -- measuring -----------------------------------------------------------------


def check_answer(row: Row, url: str, expected: tuple[str, list[float]]) -> None:
    """The row's route answers the sample row as the service's /predict does."""
    status, answer = http("POST", url + row.path, body(row.protocol))
    if status != 200:
        raise SystemExit(f"{row.name}: POST {row.path} -> {status} {answer}")
    if row.protocol == "floor":
        return
    label, probabilities = answer_of(row.protocol, answer)
    close = len(probabilities) == len(expected[1]) and all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)
        for a, b in zip(probabilities, expected[1], strict=False)
    )
    if label != expected[0] or not close:
        raise SystemExit(
            f"{row.name}: answered {label} {probabilities}, the service's /predict"
            f" {expected[0]} {expected[1]}"
        )


def log_lines_per_request(row: Row, url: str, log: Path) -> float:
    """How many lines the server writes to its log for one request of this row."""
    time.sleep(0.3)  # a line is written after its answer: the check's, for one
    before = len(log.read_bytes().splitlines())
    for _ in range(LOG_PROBE_REQUESTS):
        http("POST", url + row.path, body(row.protocol))
    time.sleep(0.3)
    return (len(log.read_bytes().splitlines()) - before) / LOG_PROBE_REQUESTS


def with_connections(options: argparse.Namespace, count: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(options), "connections": count})


def measure_round(
    peers: Sequence[Peer],
    rows: Sequence[Row],
    options: argparse.Namespace,
    logs: Path,
    number: int,
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Start every peer, check every row, then load each row in turn, by slices."""
    with contextlib.ExitStack() as stack:
        live: dict[str, Running] = {}
        for peer in peers:
            log = logs / f"{peer.key}-{number}.log"
            live[peer.key] = stack.enter_context(started(peer, log))
        expected = {}
        for model in ("iris", "heavy"):
            service = live.get(f"service-{model}")
            if service is not None:
                _, answer = http("POST", service.url + "/predict", SETOSA)
                expected[model] = answer_of("predict", answer)
        log_lines: dict[str, float] = {}
        for row in rows:
            url = live[row.peer].url
            if row.model in expected:
                check_answer(row, url, expected[row.model])
            log = logs / f"{row.peer}-{number}.log"
            log_lines[row.key] = log_lines_per_request(row, url, log)
        for row in rows:
            load = with_connections(options, row.connections)
            wrk(live[row.peer].url + row.path, load, options.warmup, None, row.script)
        slices: dict[str, list[dict[str, Any]]] = {row.key: [] for row in rows}
        seconds = options.duration / options.slices
        for _ in range(options.slices):
            for row in rows:
                load = with_connections(options, row.connections)
                slices[row.key].append(
                    measure_slice(row, live[row.peer], load, seconds)  # type: ignore[arg-type]
                )
        measured = {
            row.key: {
                **combine_slices(slices[row.key]),
                "rss_mib": tree_rss_mib(live[row.peer].process.pid),
            }
            for row in rows
        }
        return measured, log_lines


SUMMARISED = ("rps", "rps_per_cpu", "p50_ms", "p90_ms", "p99_ms", "others_cores")


def reference_of(row: Row, rows: Sequence[Row]) -> Row | None:
    """The service's /predict of the same model at the same connections."""
    for other in rows:
        if (
            other.peer == f"service-{row.model}"
            and other.protocol == "predict"
            and other.connections == row.connections
        ):
            return other
    return None


def summarise(
    rows: Sequence[Row], rounds: list[dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for row in rows:
        runs = [measured[row.key] for measured in rounds]
        figures = {key: median([r[key] for r in runs]) for key in SUMMARISED}
        figures["errors"] = sum(r["errors"] for r in runs)
        figures["rps_by_round"] = [r["rps"] for r in runs]
        figures["rps_per_cpu_by_round"] = [r["rps_per_cpu"] for r in runs]
        reference = reference_of(row, rows)
        if reference is not None:
            paired = [ratio(m[row.key]["rps"], m[reference.key]["rps"]) for m in rounds]
            per_cpu = [
                ratio(m[row.key]["rps_per_cpu"], m[reference.key]["rps_per_cpu"])
                for m in rounds
            ]
            figures["vs_predict_by_round"] = paired
            figures["vs_predict"] = median(paired)
            figures["vs_predict_per_cpu"] = median(per_cpu)
        summary[row.key] = {"name": row.name, **figures, "runs": runs}
    return summary


# -- report --------------------------------------------------------------------

SECTIONS = (
    ("iris", 64, "Iris sample"),
    ("heavy", 64, "heavy MLP"),
    ("heavy", 1, "heavy MLP"),
)


def format_report(
    rows: Sequence[Row], summary: dict[str, Any], logs: dict[str, float], rounds: int
) -> str:
    lines: list[str] = []
    for model, connections, title in SECTIONS:
        chosen = [r for r in rows if r.model == model and r.connections == connections]
        if not chosen:
            continue
        plural = "s" if connections > 1 else ""
        lines += [
            "",
            f"| {title}, {connections} connection{plural}, one row a request"
            f" (median of {rounds}) | req/s | req/s by round | req/CPU-s | p50 ms"
            " | p99 ms | errors | vs /predict, req/s (by round) | vs /predict,"
            " req/CPU-s | log lines a request |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
        ]
        for row in chosen:
            s = summary[row.key]
            by_round = ", ".join(f"{v:.0f}" for v in s["rps_by_round"])
            versus = per_cpu = ""
            if "vs_predict" in s:
                spread = s["vs_predict_by_round"]
                versus = f"{s['vs_predict']:.2f}x ({min(spread):.2f}-{max(spread):.2f})"
                per_cpu = f"{s['vs_predict_per_cpu']:.2f}x"
            lines.append(
                f"| {row.name} | {s['rps']:.0f} | {by_round} | {s['rps_per_cpu']:.0f}"
                f" | {s['p50_ms']:.2f} | {s['p99_ms']:.1f} | {s['errors']}"
                f" | {versus} | {per_cpu} | {logs[row.key]:.2g} |"
            )
    return "\n".join(lines).strip()


# -- main ----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project",
        type=Path,
        required=True,
        help="an installed render of this template (with its .venv)",
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--duration", type=float, default=4, help="seconds of load per row per round"
    )
    parser.add_argument(
        "--slices", type=int, default=2, help="turns per row per round (2 s each)"
    )
    parser.add_argument("--warmup", type=float, default=1, help="seconds per row")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--peers",
        default="service,bare,bare-model,mlserver,kserve,litserve",
        help="comma-separated subset of: %(default)s",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "template-benchmark-peers",
        help="virtualenvs (kept between runs), models and logs (default: %(default)s)",
    )
    parser.add_argument("--output", type=Path, help="the JSON file to write")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    project = options.project.resolve()
    workdir = options.workdir.resolve()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def step(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    step("the heavy model, and each peer's virtualenv (installed once, then kept)")
    peers, rows = peers_and_rows(project, workdir, set(options.peers.split(",")))
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_at_start = load_average()
    rounds: list[dict[str, dict[str, Any]]] = []
    log_lines: dict[str, float] = {}
    for number in range(1, options.rounds + 1):
        step(f"round {number}/{options.rounds}: {len(peers)} servers, {len(rows)} rows")
        measured, log_lines = measure_round(peers, rows, options, logs, number)
        rounds.append(measured)
        for row in rows:
            r = measured[row.key]
            print(
                f"  {row.name:<58} c{row.connections:<3} {r['rps']:7.0f} req/s"
                f" {r['rps_per_cpu']:7.0f} req/CPU-s  p99 {r['p99_ms']:7.1f} ms"
                f"  errors {r['errors']}  others {r['others_cores']:.2f} cores",
                file=sys.stderr,
                flush=True,
            )
    summary = summarise(rows, rounds)
    results = {
        "started": started_at,
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "options": {k: str(v) for k, v in vars(options).items()},
        "versions": package_versions(project),
        "peers": {peer.key: peer.logging for peer in peers},
        "log_lines_per_request": log_lines,
        "rows": summary,
    }
    results["machine"]["load_average_at_end"] = load_average()
    output = options.output or RESULTS_DIR / (
        "peers-" + datetime.now().strftime("%Y%m%d-%H%M%S") + ".json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(format_report(rows, summary, log_lines, options.rounds))
    others = [s["others_cores"] for s in summary.values()]
    info = results["machine"]
    print(
        f"\n{info['cpus']} CPUs, {info['wrk']}; others' cores {min(others):.2f} to"
        f" {max(others):.2f}; load average {info['load_average_at_start']:.2f} at"
        f" start, {info['load_average_at_end']:.2f} at end.\nJSON: {output};"
        f" server logs: {logs}"
    )


if __name__ == "__main__":
    main()
