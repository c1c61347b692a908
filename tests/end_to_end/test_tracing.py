"""Tracing, for real: a render's server, with ``APP_TRACING=true``, sends its
spans over OTLP/HTTP to a collector started here, which decodes the protobuf
the SDK's exporter really sends (nothing mocked); and with the collector gone,
the service answers as fast as with one, in bounded memory.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from toolkit.render import BakedProject
from toolkit.serve import SETOSA, VIRGINICA, free_port, http, serving

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
SERVICE = "iris-under-test"
TIMEOUT = 30
SERVER_SPAN = 2  # SpanKind.SPAN_KIND_SERVER in the protocol
V2_ROUTE = "/v2/models/{name}/infer"
# A collector that is down: past the queue of spans waiting for export, each
# request's spans (two) are dropped. Enough requests to fill it many times, in
# rounds; the first rounds, while it fills, are left out of the figures.
QUEUE = 512  # OTEL_BSP_MAX_QUEUE_SIZE, so that it fills early
ROUNDS, ROUND, WARM = 30, 300, 10
# Past the first rounds, how much more memory a server may take, in KiB. Each
# export tries for 10 s (OTEL_EXPORTER_OTLP_TIMEOUT) before it gives up on its
# batch of spans: were every span kept meanwhile, the 6,000 requests that
# follow would take over 30 MiB more; the queue full, the churn of the failing
# exports comes to about 10.
GROWTH_KIB = 16 * 1024


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]
    links: list[tuple[str, str, dict[str, Any]]]


def values(attributes: list[KeyValue]) -> dict[str, Any]:
    decoded = {}
    for attribute in attributes:
        kind = attribute.value.WhichOneof("value")
        decoded[attribute.key] = getattr(attribute.value, kind) if kind else None
    return decoded


def decode(body: bytes) -> list[Span]:
    """The spans of one OTLP/HTTP export request, in protobuf."""
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = values(list(resource_spans.resource.attributes))["service.name"]
        for scope_spans in resource_spans.scope_spans:
            spans += [
                Span(
                    service=service,
                    name=span.name,
                    kind=span.kind,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent=span.parent_span_id.hex(),
                    attributes=values(list(span.attributes)),
                    links=[
                        (
                            link.trace_id.hex(),
                            link.span_id.hex(),
                            values(list(link.attributes)),
                        )
                        for link in span.links
                    ],
                )
                for span in scope_spans.spans
            ]
    return spans


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver of traces: it keeps the spans it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ExportHandler)
        self.spans: list[Span] = []
        self.paths: set[str] = set()
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self) -> list[Span]:
        with self.lock:
            return list(self.spans)


class _ExportHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        assert self.headers["content-type"] == "application/x-protobuf"
        with self.server.lock:
            self.server.paths.add(self.path)
            self.server.spans += decode(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output is the assertions'


@contextmanager
def collecting() -> Iterator[Collector]:
    collector = Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        collector.shutdown()
        collector.server_close()


def post(url: str, body: Any, headers: Mapping[str, str]) -> int:
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return int(response.status)


def tracing_env(endpoint: str, **more: str) -> dict[str, str]:
    return {
        "APP_TRACING": "true",
        "APP_LOG_JSON": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms between exports (5000)
        **more,
    }


def wait_for_spans(collector: Collector, names: Counter[str]) -> list[Span]:
    """The spans received, once they include these names, as many times."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        spans = collector.received()
        if Counter(span.name for span in spans) >= names:
            return spans
        time.sleep(0.1)
    raise AssertionError(f"{names} expected, got {collector.received()}")


def one(spans: list[Span], name: str, trace_id: str | None = None) -> Span:
    found = [s for s in spans if s.name == name and trace_id in (None, s.trace_id)]
    assert len(found) == 1, (name, spans)
    return found[0]


def child_runs(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.name == "model run" and s.parent == parent.span_id]


def test_a_collector_receives_the_spans_of_each_model_route(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    project, bin_dir = dev_install
    log = tmp_path / "server.log"
    command = [bin_dir / "python", "-m", "app"]
    with (
        collecting() as collector,
        serving(command, project.path, log, tracing_env(collector.endpoint)) as s,
    ):
        name = http("GET", f"{s.url}/model")[1]["name"]
        headers = {"traceparent": TRACEPARENT, "x-request-id": "traced-1"}
        assert post(f"{s.url}/predict", SETOSA, headers) == 200
        instances = {"instances": [SETOSA, VIRGINICA, SETOSA]}
        assert post(f"{s.url}/predict/batch", instances, {}) == 200
        tensor = {
            "name": "features",
            "shape": [2, len(SETOSA)],
            "datatype": "FP32",
            "data": [*SETOSA.values(), *VIRGINICA.values()],
        }
        infer = f"{s.url}/v2/models/{name}/infer"
        assert post(infer, {"inputs": [tensor]}, {}) == 200
        # Each request: its server span and one model run.
        routes = ["POST /predict", "POST /predict/batch", f"POST {V2_ROUTE}"]
        spans = wait_for_spans(collector, Counter([*routes, *["model run"] * 3]))
    assert collector.paths == {"/v1/traces"}
    assert {span.service for span in spans} == {SERVICE}

    # /predict joined the caller's trace; its run, batched, is its child.
    predict = one(spans, "POST /predict")
    assert (predict.kind, predict.trace_id, predict.parent) == (
        SERVER_SPAN,
        CALLER_TRACE,
        CALLER_SPAN,
    )
    assert predict.attributes["http.route"] == "/predict"
    assert predict.attributes["http.response.status_code"] == 200
    assert predict.attributes["app.batch.wait_seconds"] >= 0
    [run] = child_runs(spans, predict)
    assert run.trace_id == CALLER_TRACE
    assert run.attributes == {"app.batch.size": 1, "app.batch.requests": 1}
    assert run.links == [(CALLER_TRACE, predict.span_id, {"app.batch.rows": 1})]

    # /predict/batch runs the model itself, in a child span of its request.
    batch = one(spans, "POST /predict/batch")
    assert (batch.kind, batch.parent) == (SERVER_SPAN, "")
    [run] = child_runs(spans, batch)
    assert run.attributes == {"app.batch.size": 3}

    # /v2's infer goes through the batcher: both its rows in one run.
    v2 = one(spans, f"POST {V2_ROUTE}")
    [run] = child_runs(spans, v2)
    assert run.attributes == {"app.batch.size": 2, "app.batch.requests": 1}
    assert run.links == [(v2.trace_id, v2.span_id, {"app.batch.rows": 2})]
    assert v2.attributes["app.batch.wait_seconds"] >= 0

    # The request's log line carries the ids of its server span.
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    [line] = [line for line in lines if line.get("request_id") == "traced-1"]
    assert (line["path"], line["trace_id"], line["span_id"]) == (
        "/predict",
        CALLER_TRACE,
        predict.span_id,
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_dead_collector_costs_a_bounded_queue_and_no_time(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    """Three servers side by side: tracing off, tracing to a live collector, and
    tracing to a collector that is down. Each gets its requests in turn, a round
    at a time, so that whatever else the machine does slows them alike."""
    project, bin_dir = dev_install
    command = [bin_dir / "python", "-m", "app"]
    quiet = {"APP_LOG_LEVEL": "warning", "OTEL_BSP_MAX_QUEUE_SIZE": str(QUEUE)}
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    seconds: dict[str, list[float]] = {}
    memory: dict[str, list[int]] = {}
    with collecting() as collector, ExitStack() as stack:
        environments = {
            "off": {"APP_LOG_LEVEL": "warning"},
            "collector alive": tracing_env(collector.endpoint, **quiet),
            "collector dead": tracing_env(nobody, **quiet),
        }
        servers = {
            name: stack.enter_context(
                serving(command, project.path, tmp_path / f"{name}.log", env)
            )
            for name, env in environments.items()
        }
        for _ in range(ROUNDS):
            for name, server in servers.items():
                started = time.perf_counter()
                for _ in range(ROUND):
                    post(f"{server.url}/predict", SETOSA, {})
                seconds.setdefault(name, []).append(time.perf_counter() - started)
                memory.setdefault(name, []).append(rss_kib(server.process.pid))
        assert collector.received(), "the live collector got no spans"
    per_request = {
        name: 1e3 * statistics.median(times[WARM:]) / ROUND
        for name, times in seconds.items()
    }
    # The most its memory grew once the queue was full, in KiB.
    growth = {name: max(rss[WARM:]) - rss[WARM] for name, rss in memory.items()}
    figures = f"ms a request (median of rounds) {per_request}; RSS {memory}"
    print(figures)  # for the record: pytest -s shows it
    dead_log = (tmp_path / "collector dead.log").read_text()
    assert "Failed to export spans" in dead_log, dead_log
    # Generous bounds, against the live collector of the same rounds: requests
    # do not wait for the collector, and the spans dropped do not pile up.
    assert per_request["collector dead"] < 1.5 * per_request["collector alive"], figures
    assert growth["collector dead"] < GROWTH_KIB + growth["collector alive"], figures
