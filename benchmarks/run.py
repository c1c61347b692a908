"""Measure the template and the service it renders against floors, in one run.

From the repository root, with ``requirements-dev.txt`` installed and ``wrk`` on
the PATH (Debian: ``apt-get install wrk``)::

    python -m benchmarks.run

It prints tables and writes every figure as JSON to ``benchmarks/results/``.
Each serving figure is the median of ``--rounds`` rounds. A round starts every
server, then loads each in turn for a slice of ``--duration`` (A B C A B C ...),
so that a busy neighbour hurts every row alike. benchmarks/README.md says
what each row and floor means.
"""

# ruff: noqa: S603, S607  (it runs cookiecutter, Poetry, pytest, wrk and servers)

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.harness import (
    SETOSA,
    TEMPLATE,
    BakedProject,
    Running,
    bake,
    clean_env,
    free_port,
    http,
    poetry_install,
    serving,
)

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
WRK_SCRIPT = HERE / "post.lua"
FLOORS_DIR = HERE / "floors"
HEAVY_DIR = HERE / "heavy"
# Batching on (the service's defaults): a model run takes up to this many of
# the 64 connections' requests, and no request waits for others to arrive.
BATCHING_ON = {"APP_BATCH_MAX_SIZE": "64", "APP_BATCH_MAX_WAIT_MS": "0"}
BATCHING_OFF = {"APP_BATCH_MAX_SIZE": "1"}
HEAVY_PACKAGES = ("onnx", "onnxruntime", "numpy")
BATCH_SIZE = 100
READY_TIMEOUT = 30.0
SECTIONS = ("render", "green", "tests", "cold", "serving")

# The rows of the serving table, by key (for --servers) and name.
ROWS = {
    "bare": "floor: bare FastAPI",
    "bare-quiet": "floor: bare FastAPI, no access log",
    "raw": "floor: raw ASGI",
    "service": "service",
    "baseline": "baseline service",
    "other": "other service",
    "quiet": "service, APP_LOG_LEVEL=warning",
    "tracing": "service, APP_TRACING=true",
    "tracing-dead": "service, APP_TRACING=true, collector down",
    "tracing-sampled": "service, APP_TRACING=true, 1 trace in 10 sampled",
    "h11": "service, APP_HTTP=h11",
    "batch": "service, /predict/batch",
    "workers": "service, APP_WORKERS=2",
    "unbatched": "service, batching off",
    "keys": "service, APP_API_KEYS on",
    "heavy": "heavy model (ONNX MLP, ~1 ms a row), batching off",
    "heavy-batching": "heavy model, batching on",
}
(
    BARE,
    BARE_QUIET,
    RAW,
    SERVICE,
    BASELINE,
    OTHER,
    QUIET,
    TRACING,
    TRACING_DEAD,
    TRACING_SAMPLED,
    H11,
    BATCH,
    WORKERS,
    UNBATCHED,
    KEYS,
    HEAVY,
    HEAVY_BATCHING,
) = ROWS.values()
RATIOS = (
    (SERVICE, BARE),
    (SERVICE, BARE_QUIET),
    (SERVICE, RAW),
    (QUIET, BARE_QUIET),
    (SERVICE, QUIET),
    (TRACING, SERVICE),
    (TRACING_DEAD, SERVICE),
    (TRACING_SAMPLED, SERVICE),
    (H11, SERVICE),
    (BASELINE, BARE),
    (SERVICE, BASELINE),
    (OTHER, BARE),
    (SERVICE, OTHER),
    (OTHER, BASELINE),
    (WORKERS, SERVICE),
    (SERVICE, UNBATCHED),
    (KEYS, SERVICE),
    (HEAVY_BATCHING, HEAVY),
)


# -- measuring ---------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent on anything but idling, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_tree(pid: int) -> Iterator[int]:
    pending = [pid]
    while pending:
        current = pending.pop()
        yield current
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, in MiB."""
    total_kib = 0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text()
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process and its live descendants."""
    user = system = 0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def run_checked(
    command: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> tuple[float, str]:
    """Run a command to success; its wall time and output."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"{command} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return elapsed, result.stdout


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the child processes started inside."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- render ------------------------------------------------------------------


def write_trivial_template(path: Path) -> Path:
    """The render floor: one question, one file, no hooks."""
    (path / "{{cookiecutter.project_slug}}").mkdir(parents=True)
    (path / "cookiecutter.json").write_text('{"project_slug": "trivial"}\n')
    (path / "{{cookiecutter.project_slug}}" / "README.md").write_text(
        "# {{ cookiecutter.project_slug }}\n"
    )
    return path


def measure_render(workdir: Path, runs: int) -> dict[str, Any]:
    """``cookiecutter --no-input`` of this template and of a trivial one, in turn."""
    trivial = write_trivial_template(workdir / "trivial-template")
    # Cookiecutter leaves each rendered hook script in the temporary directory,
    # and a hook lists that directory on its first import: a /tmp that earlier
    # runs filled would slow the hooks. Both templates get a fresh one.
    temporary = workdir / "render-tmp"
    temporary.mkdir()
    samples: dict[str, list[float]] = {"template": [], "trivial": []}
    for run in range(runs):
        for name, template in (("trivial", trivial), ("template", TEMPLATE)):
            output = workdir / f"render-{name}-{run}"
            command = [sys.executable, "-m", "cookiecutter", "--no-input"]
            command += ["--default-config", "--output-dir", str(output), str(template)]
            env = {"TMPDIR": str(temporary)}
            samples[name].append(run_checked(command, workdir, env)[0])
            shutil.rmtree(output)
    template_s, trivial_s = median(samples["template"]), median(samples["trivial"])
    return {
        "runs": runs,
        "template_s": template_s,
        "trivial_s": trivial_s,
        "ratio": ratio(template_s, trivial_s),
        "samples_s": samples,
    }


# -- time to green -----------------------------------------------------------


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


# -- serving -----------------------------------------------------------------


@dataclass
class Server:
    """How to start one app under test on the port it is given."""

    key: str
    command: Callable[[int], list[str]]
    cwd: Path
    env: Callable[[int], dict[str, str]] = field(default=lambda port: {})
    path: str = "/predict"
    batch: int | None = None
    script: Path = WRK_SCRIPT  # the wrk script that writes the body

    @property
    def name(self) -> str:
        return ROWS[self.key]


@contextlib.contextmanager
def running(server: Server, log: Path) -> Iterator[Running]:
    port = free_port()
    try:
        # Polled every 5 ms: the time it takes is the cold-start figure.
        with serving(
            server.command(port),
            server.cwd,
            log,
            server.env(port),
            port=port,
            timeout=READY_TIMEOUT,
            interval=0.005,
        ) as live:
            yield live
    except AssertionError as error:
        raise SystemExit(f"{server.name}: {error}") from None


def check_answers(server: Server, url: str) -> None:
    """One request by hand before the load: a 200 with a prediction in it."""
    body: Any = {"instances": [SETOSA] * server.batch} if server.batch else SETOSA
    status, answer = http("POST", url + server.path, body)
    if server.key == "keys":  # keys are on: none sent here (wrk sends one)
        if status != 401:
            raise SystemExit(f"{server.name}: {status} without a key: {answer}")
        return
    if status != 200 or "label" not in json.dumps(answer):
        raise SystemExit(f"{server.name}: POST {server.path} -> {status} {answer}")


def wrk(
    url: str,
    options: argparse.Namespace,
    seconds: float,
    batch: int | None,
    script: Path = WRK_SCRIPT,
):
    command = ["wrk", f"-t{options.threads}", f"-c{options.connections}"]
    command += [f"-d{seconds:g}s", "--timeout", "5s", "-s", str(script), url]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(os.environ, WRK_BATCH=str(batch or "")),
        timeout=seconds + 60,
        check=False,
    )
    match = re.search(r"^WRK_SUMMARY (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not match:
        raise SystemExit(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    summary = json.loads(match.group(1))
    socket_errors = sum(summary[k] for k in ("connect", "read", "write", "timeout"))
    return {
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "requests": summary["requests"],
        "duration_s": summary["duration_us"] / 1e6,
        "http_errors": summary["non_2xx_3xx"],
        "socket_errors": socket_errors,
        "errors": summary["non_2xx_3xx"] + socket_errors,
        **{
            f"{name}_ms": summary[f"{name}_us"] / 1000
            for name in ("p50", "p90", "p99", "p999", "mean", "max")
        },
    }


def measure_slice(
    server: Server, live: Running, options: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    """Load one running server with wrk for ``seconds``; what it and the rest used."""
    pid = live.process.pid
    user0, system0 = tree_cpu_seconds(pid)
    busy0, wrk0 = machine_busy_seconds(), children_cpu_seconds()
    result = wrk(live.url + server.path, options, seconds, server.batch, server.script)
    busy1, wrk1 = machine_busy_seconds(), children_cpu_seconds()
    user1, system1 = tree_cpu_seconds(pid)
    server_s = (user1 - user0) + (system1 - system0)
    result.update(
        user_s=user1 - user0,
        system_s=system1 - system0,
        # Cores kept busy by anything but this server and wrk: the noise.
        others_s=max(0.0, busy1 - busy0 - server_s - (wrk1 - wrk0)),
    )
    return result


def combine_slices(slices: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One server's figures over its slices of a round."""
    requests = sum(s["requests"] for s in slices)
    duration = sum(s["duration_s"] for s in slices)
    user = sum(s["user_s"] for s in slices)
    system = sum(s["system_s"] for s in slices)
    return {
        "rps": requests / duration,
        "requests": requests,
        "duration_s": duration,
        # Requests per CPU-second of the server: its throughput per core,
        # which a busy neighbour disturbs far less than the wall-clock rate.
        "rps_per_cpu": ratio(requests, user + system),
        "user_us": user / requests * 1e6,
        "system_us": system / requests * 1e6,
        "others_cores": sum(s["others_s"] for s in slices) / duration,
        **{
            key: sum(s[key] for s in slices)
            for key in ("http_errors", "socket_errors", "errors")
        },
        # wrk reports percentiles per slice: their median stands for the round.
        **{
            f"{name}_ms": median([s[f"{name}_ms"] for s in slices])
            for name in ("p50", "p90", "p99", "p999", "mean")
        },
        "max_ms": max(s["max_ms"] for s in slices),
        "slices_rps": [s["rps"] for s in slices],
    }


def measure_round(
    servers: Sequence[Server], options: argparse.Namespace, logs: Path, number: int
) -> dict[str, dict[str, Any]]:
    """Start every server, then load each in turn, a slice at a time.

    The servers of a round run side by side and wait idle while another is
    loaded, so that a change in the machine's speed during the round (other
    work on the host) falls on every server alike rather than on whichever
    was loaded at the time.
    """
    with contextlib.ExitStack() as stack:
        live: dict[str, Running] = {}
        for server in servers:
            log = logs / f"{server.key}-{number}.log"
            live[server.key] = stack.enter_context(running(server, log))
        idle_mib: dict[str, float] = {}
        for server in servers:
            url = live[server.key].url
            check_answers(server, url)
            idle_mib[server.key] = tree_rss_mib(live[server.key].process.pid)
            wrk(url + server.path, options, options.warmup, server.batch)
        slices: dict[str, list[dict[str, Any]]] = {s.key: [] for s in servers}
        seconds = options.duration / options.slices
        for _ in range(options.slices):
            for server in servers:
                slices[server.key].append(
                    measure_slice(server, live[server.key], options, seconds)
                )
        return {
            server.key: {
                **combine_slices(slices[server.key]),
                "rss_idle_mib": idle_mib[server.key],
                "rss_after_mib": tree_rss_mib(live[server.key].process.pid),
                "ready_s": live[server.key].ready_s,
            }
            for server in servers
        }


SUMMARISED = (
    "rps",
    "rps_per_cpu",
    "user_us",
    "system_us",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "others_cores",
    "rss_idle_mib",
    "rss_after_mib",
)


def measure_serving(
    servers: Sequence[Server], options: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    """``--rounds`` rounds of every server; medians over the rounds."""
    runs: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
    for round_number in range(1, options.rounds + 1):
        measured = measure_round(servers, options, logs, round_number)
        for server in servers:
            r = measured[server.key]
            runs[server.name].append(r)
            print(
                f"  round {round_number}/{options.rounds}  {server.name:<36}"
                f" {r['rps']:7.0f} req/s {r['rps_per_cpu']:7.0f} req/CPU-s"
                f"  p50 {r['p50_ms']:5.1f} p99 {r['p99_ms']:6.1f} ms"
                f"  others {r['others_cores']:.2f} cores",
                file=sys.stderr,
                flush=True,
            )
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        summary[name] = {key: median([r[key] for r in results]) for key in SUMMARISED}
        summary[name]["errors"] = sum(r["errors"] for r in results)
        summary[name]["requests"] = sum(r["requests"] for r in results)
        summary[name]["runs"] = results
    return summary


def compute_ratios(serving: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Ratios of the medians, and the ratio within each round (run side by side)."""
    ratios = {}
    for a, b in RATIOS:
        if a in serving and b in serving:
            first, second = serving[a], serving[b]
            paired = [
                ratio(x["rps"], y["rps"])
                for x, y in zip(first["runs"], second["runs"], strict=True)
            ]
            ratios[f"{a} / {b}"] = {
                "rps": ratio(first["rps"], second["rps"]),
                "rps_per_cpu": ratio(first["rps_per_cpu"], second["rps_per_cpu"]),
                "p50": ratio(first["p50_ms"], second["p50_ms"]),
                "p99": ratio(first["p99_ms"], second["p99_ms"]),
                "rps_per_round": paired,
                "rps_per_round_median": median(paired),
            }
    return ratios


def heavy_project(project: Path, workdir: Path) -> Path:
    """A copy of the render with the heavy ONNX model beside it, as mlp.onnx,
    signed by the render's own code: its service serves it by APP_MODEL_PATH."""
    python = project / ".venv" / "bin" / "python"
    copy = workdir / "heavy-project"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".venv"))
    run_checked([python, "-m", "pip", "install", "--quiet", *HEAVY_PACKAGES], copy)
    run_checked([python, HEAVY_DIR / "build.py", copy / "mlp.onnx", copy], copy)
    return copy


def servers_under_test(
    project: Path,
    baseline: Path | None,
    heavy: Path | None = None,
    other: Path | None = None,
    collector: str | None = None,
) -> list[Server]:
    python = str(project / ".venv" / "bin" / "python")

    def floor(key: str, app: str, *flags: str) -> Server:
        # Run by uvicorn with its defaults, in the same virtualenv as the service.
        def command(port: int) -> list[str]:
            return [python, "-m", "uvicorn", app, "--port", str(port), *flags]

        return Server(key, command, FLOORS_DIR)

    def service(
        key: str,
        directory: Path,
        workers: int = 1,
        settings: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Server:
        def command(port: int) -> list[str]:
            return [str(directory / ".venv" / "bin" / "python"), "-m", "app"]

        def env(port: int) -> dict[str, str]:
            return {
                "APP_PORT": str(port),
                "APP_WORKERS": str(workers),
                **(settings or {}),
            }

        return Server(key, command, directory, env, **kw)

    servers = [
        floor("bare", "bare_fastapi:app"),
        floor("bare-quiet", "bare_fastapi:app", "--no-access-log"),
        floor("raw", "raw_asgi:app", "--no-access-log"),
        service("service", project),
    ]
    if baseline is not None:
        servers.append(service("baseline", baseline))
    if other is not None:
        servers.append(service("other", other))
    # Without its log line per request, like the floor without its access log.
    servers.append(service("quiet", project, settings={"APP_LOG_LEVEL": "warning"}))
    # Tracing every request, its spans sent to a collector that takes them
    # (one in this process, which reads each export and answers 200), or to
    # one that is down (nothing listens on its port).
    if collector is not None:
        traced = {"APP_TRACING": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector}
        servers.append(service("tracing", project, settings=traced))
        sampled = {
            **traced,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        }
        servers.append(service("tracing-sampled", project, settings=sampled))
    dead = f"http://127.0.0.1:{free_port()}"
    traced_dead = {"APP_TRACING": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": dead}
    servers.append(service("tracing-dead", project, settings=traced_dead))
    # uvicorn's pure-Python parser, the alternative to httptools.
    servers.append(service("h11", project, settings={"APP_HTTP": "h11"}))
    servers.append(service("batch", project, path="/predict/batch", batch=BATCH_SIZE))
    servers.append(service("workers", project, workers=2))
    servers.append(service("unbatched", project, settings=BATCHING_OFF))
    # Every /predict sends a key, checked against three configured ones.
    keys = ",".join(
        f"{name}:benchmark-key-{digits}"
        for name, digits in (
            ("a", "9876543210"),
            ("b", "5555555555"),
            ("c", "0123456789"),
        )
    )
    servers.append(
        service(
            "keys",
            project,
            settings={"APP_API_KEYS": keys},
            script=HERE / "post_keyed.lua",
        )
    )
    if heavy is not None:

        def heavy_service(key: str, settings: Mapping[str, str]) -> Server:
            def env(port: int) -> dict[str, str]:
                model = {"APP_MODEL_PATH": str(heavy / "mlp.onnx")}
                return {"APP_PORT": str(port), **model, **settings}

            return Server(key, lambda port: [python, "-m", "app"], heavy, env)

        servers.append(heavy_service("heavy", BATCHING_OFF))
        servers.append(heavy_service("heavy-batching", BATCHING_ON))
    return servers


class _Accept(BaseHTTPRequestHandler):
    """Takes an OTLP/HTTP export and answers that it was taken."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")  # an empty response message
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """A collector that takes every export and keeps nothing: its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def measure_cold_start(project: Path, runs: int, logs: Path) -> dict[str, Any]:
    """From spawning ``python -m app`` to its first 200 on /health/ready."""
    server = Server(
        "service",
        lambda port: [str(project / ".venv" / "bin" / "python"), "-m", "app"],
        project,
        lambda port: {"APP_PORT": str(port)},
    )
    samples = []
    for run in range(runs):
        with running(server, logs / f"cold-start-{run}.log") as live:
            samples.append(live.ready_s)
    return {"runs": runs, "median_s": median(samples), "samples_s": samples}


# -- report ------------------------------------------------------------------


def package_versions(project: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n"
        " in ('fastapi', 'starlette', 'uvicorn', 'pydantic', 'httptools', 'uvloop')}))"
    )
    python = project / ".venv" / "bin" / "python"
    return json.loads(run_checked([python, "-c", code], project)[1])


def machine() -> dict[str, Any]:
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version.split(" [")[0],
        "load_average_at_start": load_average(),
    }


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, figure, met) for each target the run has a figure for."""
    met = []
    ratios = results.get("ratios", {})
    if bare := ratios.get(f"{SERVICE} / {BARE}"):
        for label, key, bound, at_least in (
            ("/predict req/s >= 0.9x bare FastAPI", "rps", 0.9, True),
            ("/predict p99 <= 1.2x bare FastAPI", "p99", 1.2, False),
            ("stretch: /predict req/s >= 1.0x bare FastAPI", "rps", 1.0, True),
        ):
            value = bare[key]
            ok = value >= bound if at_least else value <= bound
            met.append((label, f"{value:.2f}x", ok))
    if quiet := ratios.get(f"{SERVICE} / {BARE_QUIET}"):
        value = quiet["rps"]
        met.append(
            (
                "stretch: req/s >= 0.8x bare, no access log",
                f"{value:.2f}x",
                value >= 0.8,
            )
        )
    if render := results.get("render"):
        value = render["ratio"]
        met.append(("render <= 1.5x trivial template", f"{value:.2f}x", value <= 1.5))
    if cold := results.get("cold_start"):
        value = cold["median_s"]
        met.append(("cold start < 1.5 s", f"{value:.2f} s", value < 1.5))
    if tests := results.get("tests"):
        value = tests["wall_s"]
        met.append(("generated test suite < 5 s", f"{value:.2f} s", value < 5))
    return met


def format_report(results: dict[str, Any]) -> str:
    lines: list[str] = []

    def row(*cells: str) -> None:
        lines.append("| " + " | ".join(cells) + " |")

    def header(*cells: str) -> None:
        if lines:
            lines.append("")
        row(*cells)
        row("---", *["---:"] * (len(cells) - 1))

    if any(k in results for k in ("render", "time_to_green", "tests", "cold_start")):
        header("template", "time", "floor", "ratio")
    if render := results.get("render"):
        row(
            f"render, `cookiecutter --no-input` (median of {render['runs']})",
            f"{render['template_s']:.2f} s",
            f"{render['trivial_s']:.2f} s (one-file template)",
            f"{render['ratio']:.2f}x",
        )
    for cache, green in results.get("time_to_green", {}).items():
        row(
            f"time to green, {cache} package cache: render + `poetry install`"
            f" + tests ({green['render_s']:.1f} + {green['install_s']:.1f}"
            f" + {green['tests_s']:.1f} s)",
            f"{green['total_s']:.1f} s",
            "",
            "",
        )
    if tests := results.get("tests"):
        row(
            f"generated test suite, `pytest` wall time (median of {tests['runs']})",
            f"{tests['wall_s']:.2f} s",
            f"pytest's own count: {tests['pytest_reported_s']:.2f} s",
            "",
        )
    if cold := results.get("cold_start"):
        row(
            f"cold start, `python -m app` to 200 on /health/ready (median of"
            f" {cold['runs']})",
            f"{cold['median_s']:.2f} s",
            "",
            "",
        )
    if serving := results.get("serving"):
        rounds = results["options"]["rounds"]
        header(
            f"POST /predict, one sample, {results['options']['connections']}"
            f" connections (median of {rounds})",
            "req/s",
            "req/CPU-s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "errors",
            "RSS idle / loaded MiB",
            "others' cores",
        )
        for name, s in serving.items():
            per_request = BATCH_SIZE if name == BATCH else 1
            unit = f" ({BATCH_SIZE} predictions each)" if per_request > 1 else ""
            row(
                name + unit,
                f"{s['rps']:.0f}",
                f"{s['rps_per_cpu']:.0f}",
                f"{s['p50_ms']:.1f}",
                f"{s['p90_ms']:.1f}",
                f"{s['p99_ms']:.1f}",
                str(s["errors"]),
                f"{s['rss_idle_mib']:.0f} / {s['rss_after_mib']:.0f}",
                f"{s['others_cores']:.2f}",
            )
        if BATCH in serving:
            b = serving[BATCH]
            row(
                "service, /predict/batch, predictions/s",
                f"{b['rps'] * BATCH_SIZE:.0f}",
                f"{b['rps_per_cpu'] * BATCH_SIZE:.0f}",
                *[""] * 6,
            )
        header("ratio of medians", "req/s", "req/CPU-s", "p50", "p99", "req/s by round")
        for name, r in results["ratios"].items():
            by_round = r["rps_per_round"]
            row(
                name,
                *(f"{r[k]:.2f}x" for k in ("rps", "rps_per_cpu", "p50", "p99")),
                f"{r['rps_per_round_median']:.2f}x ({min(by_round):.2f}-"
                f"{max(by_round):.2f})",
            )
    if met := results.get("targets"):
        header("target", "this run", "met")
        for label, figure, ok in met:
            row(label, figure, "yes" if ok else "**no**")
    return "\n".join(lines)


# -- main --------------------------------------------------------------------


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
        results["ratios"] = compute_ratios(results["serving"])
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
