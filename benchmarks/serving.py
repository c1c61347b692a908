"""What ``benchmarks.run`` serves, row by row: the floors (bare FastAPI, raw
ASGI), the service at its defaults and with one setting changed each (its log
line, OpenTelemetry, the HTTP parser, batching, workers, API keys), the heavy
model with batching off and on, and other renders side by side; the ratios
between rows that the tables show; and the service's cold start."""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.load import Server, running
from benchmarks.measure import median, run_checked
from toolkit.serve import free_port

HERE = Path(__file__).resolve().parent
FLOORS_DIR = HERE / "floors"
HEAVY_DIR = HERE / "heavy"
# Batching on (the service's defaults): a model run takes up to this many of
# the 64 connections' requests, and no request waits for others to arrive.
BATCHING_ON = {"APP_MAX_ROWS_PER_RUN": "64", "APP_MAX_WAIT_PER_RUN_MS": "0"}
BATCHING_OFF = {"APP_MAX_ROWS_PER_RUN": "1"}
HEAVY_PACKAGES = ("onnx", "onnxruntime", "numpy")
BATCH_SIZE = 100

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


def floor(key: str, python: Path, app: str, *flags: str) -> Server:
    """A floor, run by uvicorn with its defaults in the service's virtualenv."""

    def command(port: int) -> list[str]:
        return [str(python), "-m", "uvicorn", app, "--port", str(port), *flags]

    return Server(key, ROWS[key], command, FLOORS_DIR)


def service(
    key: str,
    directory: Path,
    workers: int = 1,
    settings: Mapping[str, str] | None = None,
    **kw: Any,
) -> Server:
    """``python -m app`` of the installed render in ``directory``."""

    def command(port: int) -> list[str]:
        return [str(directory / ".venv" / "bin" / "python"), "-m", "app"]

    def env(port: int) -> dict[str, str]:
        return {"APP_PORT": str(port), "APP_WORKERS": str(workers), **(settings or {})}

    return Server(key, ROWS[key], command, directory, env, **kw)


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
    python = project / ".venv" / "bin" / "python"
    servers = [
        floor("bare", python, "bare_fastapi:app"),
        floor("bare-quiet", python, "bare_fastapi:app", "--no-access-log"),
        floor("raw", python, "raw_asgi:app", "--no-access-log"),
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
            expect=401,  # the request by hand sends no key; wrk's do
        )
    )
    if heavy is not None:
        # The heavy copy has no virtualenv of its own: the render's serves it.
        def heavy_service(key: str, settings: Mapping[str, str]) -> Server:
            def env(port: int) -> dict[str, str]:
                model = {"APP_MODEL_PATH": str(heavy / "mlp.onnx")}
                return {"APP_PORT": str(port), **model, **settings}

            return Server(
                key, ROWS[key], lambda port: [str(python), "-m", "app"], heavy, env
            )

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
    samples = []
    server = service("service", project)
    for run in range(runs):
        with running(server, logs / f"cold-start-{run}.log") as live:
            samples.append(live.ready_s)
    return {"runs": runs, "median_s": median(samples), "samples_s": samples}
