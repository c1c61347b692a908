"""Tracing: the spans of each route, their parents and links, and the ids in the
log lines. The spans go to an in-memory exporter here; the OTLP/HTTP export is
the SDK's own."""

import asyncio
import json
import logging
import logging.config
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from pydantic import ValidationError

from app import tracing
from app.batching import Batcher
from app.config import Settings, describe_errors
from app.logs import (
    RequestIdFilter,
    TraceContextFilter,
    logging_config,
    request_id,
)
from app.main import create_app
from app.middleware import RequestLog
from tests.conftest import FEATURE_NAMES, FIRST, LAST, MODEL

TRACING = Settings(_env_file=None, tracing=True)
# A caller's trace: version, trace id, parent span id, flags (01: sampled).
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


class Spans:
    """A tracer provider whose spans the test reads as they end."""

    def __init__(self, **provider_options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(**provider_options)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.named(name)
        return span


@pytest.fixture
def spans() -> Spans:
    return Spans()


def client_of(settings: Settings, spans: Spans) -> TestClient:
    return TestClient(create_app(settings, MODEL, tracer_provider=spans.provider))


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def linked(span: ReadableSpan) -> list[int]:
    return [link.context.span_id for link in span.links]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def waited(span: ReadableSpan) -> float:
    """The seconds the request's rows waited in the batcher's queue."""
    seconds = attributes(span)[tracing.BATCH_WAIT]
    assert isinstance(seconds, float)
    assert seconds >= 0
    return seconds


def test_tracing_is_off_by_default(settings: Settings, spans: Spans) -> None:
    with client_of(settings, spans) as client:
        assert client.post("/predict", json=FIRST.features).status_code == 200
    assert spans.exporter.get_finished_spans() == ()


def test_tracing_off_leaves_the_global_provider_alone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI's own OpenTelemetry would look the provider up on every request.
    def looked_up() -> trace.TracerProvider:
        raise AssertionError("the tracer provider was looked up")

    monkeypatch.setattr(trace, "get_tracer_provider", looked_up)
    with TestClient(create_app(settings, MODEL)) as client:
        assert client.post("/predict", json=FIRST.features).status_code == 200


def test_predict_runs_the_model_in_a_child_of_its_server_span(spans: Spans) -> None:
    with client_of(TRACING, spans) as client:
        assert client.post("/predict", json=FIRST.features).status_code == 200
    server, run = spans.one("POST /predict"), spans.one(tracing.MODEL_RUN)
    assert server.kind == trace.SpanKind.SERVER
    assert attributes(server)["http.route"] == "/predict"
    assert attributes(server)["http.response.status_code"] == 200
    assert waited(server) < 1
    assert run.context.trace_id == server.context.trace_id
    assert parent_of(run) == server.context.span_id
    assert linked(run) == [server.context.span_id]
    assert attributes(run) == {tracing.BATCH_SIZE: 1, tracing.BATCH_REQUESTS: 1}


def test_predict_continues_the_callers_trace(spans: Spans) -> None:
    with client_of(TRACING, spans) as client:
        response = client.post(
            "/predict", json=FIRST.features, headers={"traceparent": TRACEPARENT}
        )
    assert response.status_code == 200, response.text
    server, run = spans.one("POST /predict"), spans.one(tracing.MODEL_RUN)
    assert trace.format_trace_id(server.context.trace_id) == CALLER_TRACE
    assert parent_of(server) == int(CALLER_SPAN, 16)
    assert server.parent is not None
    assert server.parent.is_remote
    assert run.context.trace_id == server.context.trace_id


def test_an_unsampled_caller_gets_no_spans(spans: Spans) -> None:
    unsampled = TRACEPARENT.removesuffix("-01") + "-00"
    with client_of(TRACING, spans) as client:
        response = client.post(
            "/predict", json=FIRST.features, headers={"traceparent": unsampled}
        )
    assert response.status_code == 200, response.text
    assert spans.exporter.get_finished_spans() == ()


def test_predict_without_batching_runs_the_model_in_a_child_span(
    spans: Spans,
) -> None:
    settings = Settings(_env_file=None, tracing=True, max_rows_per_run=1)
    with client_of(settings, spans) as client:
        assert client.post("/predict", json=FIRST.features).status_code == 200
    server, run = spans.one("POST /predict"), spans.one(tracing.MODEL_RUN)
    assert parent_of(run) == server.context.span_id
    assert run.attributes == {tracing.BATCH_SIZE: 1}


def test_predict_batch_runs_the_model_in_a_child_of_its_server_span(
    spans: Spans,
) -> None:
    body = {"instances": [FIRST.features, LAST.features, FIRST.features]}
    with client_of(TRACING, spans) as client:
        assert client.post("/predict/batch", json=body).status_code == 200
    server, run = spans.one("POST /predict/batch"), spans.one(tracing.MODEL_RUN)
    assert parent_of(run) == server.context.span_id
    assert run.attributes == {tracing.BATCH_SIZE: 3}


def test_v2_infer_runs_through_the_batcher_in_a_child_span(spans: Spans) -> None:
    rows = [FIRST.features, LAST.features]
    tensor = {
        "name": "features",
        "shape": [len(rows), len(FEATURE_NAMES)],
        "datatype": "FP32",
        "data": [value for row in rows for value in row.values()],
    }
    path = f"/v2/models/{MODEL.name}/infer"
    with client_of(TRACING, spans) as client:
        response = client.post(path, json={"inputs": [tensor]})
    assert response.status_code == 200, response.text
    server = spans.one("POST /v2/models/{name}/infer")
    run = spans.one(tracing.MODEL_RUN)
    assert parent_of(run) == server.context.span_id
    assert linked(run) == [server.context.span_id]
    assert attributes(run) == {tracing.BATCH_SIZE: 2, tracing.BATCH_REQUESTS: 1}
    assert [link.attributes for link in run.links] == [{tracing.BATCH_ROWS: 2}]
    assert waited(server) < 1


def test_a_run_for_several_requests_links_to_each_and_each_back(
    spans: Spans,
) -> None:
    tracer = spans.provider.get_tracer(__name__)

    def times_ten(rows: Sequence[int]) -> list[int]:
        return [row * 10 for row in rows]

    batcher = Batcher(times_ten, 8, tracer=tracer)

    async def request(name: str, rows: list[int]) -> list[int]:
        with tracer.start_as_current_span(name):
            return await batcher.predict_many(rows)

    async def two_requests() -> list[list[int]]:
        batcher.start()
        try:
            # Both queue their rows before the batcher's worker runs again.
            return list(await asyncio.gather(request("a", [1]), request("b", [2, 3])))
        finally:
            await batcher.stop()

    assert asyncio.run(two_requests()) == [[10], [20, 30]]
    a, b, run = spans.one("a"), spans.one("b"), spans.one(tracing.MODEL_RUN)
    assert {a.context.trace_id, b.context.trace_id} != {run.context.trace_id}
    assert parent_of(run) == a.context.span_id
    assert linked(run) == [a.context.span_id, b.context.span_id]
    assert [link.attributes for link in run.links] == [
        {tracing.BATCH_ROWS: 1},
        {tracing.BATCH_ROWS: 2},
    ]
    assert run.attributes == {tracing.BATCH_SIZE: 3, tracing.BATCH_REQUESTS: 2}
    assert linked(b) == [run.context.span_id]
    assert linked(a) == []  # its child already
    assert waited(a) < 1
    assert waited(b) < 1


def test_a_failed_run_marks_its_span_as_an_error(spans: Spans) -> None:
    tracer = spans.provider.get_tracer(__name__)

    def failing(rows: Sequence[int]) -> list[int]:
        raise RuntimeError("the model failed")

    batcher = Batcher(failing, 8, tracer=tracer)

    async def one_request() -> None:
        batcher.start()
        try:
            with tracer.start_as_current_span("request"):
                await batcher.predict(1)
        finally:
            await batcher.stop()

    with pytest.raises(Exception, match="the model failed on a batch of 1 rows"):
        asyncio.run(one_request())
    run = spans.one(tracing.MODEL_RUN)
    assert run.status.status_code == trace.StatusCode.ERROR
    assert run.status.description == "RuntimeError"


def test_runs_of_unsampled_requests_are_not_traced() -> None:
    spans = Spans(sampler=ALWAYS_OFF)
    with client_of(TRACING, spans) as client:
        assert client.post("/predict", json=FIRST.features).status_code == 200
    assert spans.exporter.get_finished_spans() == ()


class Records(logging.Handler):
    """Keeps the records it is given, stamped by the trace filter."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())
        self.addFilter(TraceContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("app")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_the_request_line_carries_the_ids_of_its_server_span(
    spans: Spans, records: Records
) -> None:
    with client_of(TRACING, spans) as client:
        client.post("/predict", json=FIRST.features, headers={"x-request-id": "r-1"})
    server = spans.one("POST /predict")
    [line] = [r for r in records.records if r.name == "app.access"]
    assert line.getMessage().startswith("POST /predict 200")
    assert (line.request_id, line.trace_id, line.span_id) == (  # type: ignore[attr-defined]
        "r-1",
        trace.format_trace_id(server.context.trace_id),
        trace.format_span_id(server.context.span_id),
    )


def test_lines_written_together_carry_each_their_own_ids(
    spans: Spans, records: Records
) -> None:
    tracer = spans.provider.get_tracer(__name__)
    log = RequestLog()

    async def two_end_while_a_third_is_served() -> None:
        for _ in range(3):
            log.started()
        for name in ("first", "second"):
            with tracer.start_as_current_span(name):
                log.ended(name, "POST", "/predict", 200, 0.001)
        assert records.records == []  # their lines wait for the end of the turn
        await asyncio.sleep(0)

    asyncio.run(two_end_while_a_third_is_served())
    lines = [
        (line.request_id, line.trace_id, line.span_id)  # type: ignore[attr-defined]
        for line in records.records
    ]
    assert lines == [(name, *ids(spans.one(name))) for name in ("first", "second")]


def ids(span: ReadableSpan) -> tuple[str, str]:
    """The trace and span ids of a span, as the log lines show them."""
    return (
        trace.format_trace_id(span.context.trace_id),
        trace.format_span_id(span.context.span_id),
    )


def test_a_line_outside_any_span_has_no_ids(records: Records) -> None:
    logging.getLogger("app.test").info("no request here")
    [line] = records.records
    assert (line.trace_id, line.span_id) == ("-", "-")  # type: ignore[attr-defined]


@pytest.fixture
def configure() -> Iterator[None]:
    """Let a test apply a logging config, then put the loggers back."""
    loggers = [logging.getLogger(name) for name in ("app", "uvicorn", "opentelemetry")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


def log_in_a_span(settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    logging.config.dictConfig(logging_config(settings))
    span = trace.NonRecordingSpan(
        trace.SpanContext(int(CALLER_TRACE, 16), int(CALLER_SPAN, 16), is_remote=False)
    )
    token = request_id.set("req-1")
    try:
        with trace.use_span(span):
            logging.getLogger("app.test").info("hello")
    finally:
        request_id.reset(token)
    (line,) = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.usefixtures("configure")
def test_text_lines_carry_the_trace_and_span_ids_with_tracing_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = log_in_a_span(TRACING, capsys)
    assert line.endswith(
        f" app.test [req-1 trace={CALLER_TRACE} span={CALLER_SPAN}] hello"
    ), line


@pytest.mark.usefixtures("configure")
def test_json_lines_carry_the_trace_and_span_ids_with_tracing_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = log_in_a_span(Settings(_env_file=None, tracing=True, log_json=True), capsys)
    record = json.loads(line)
    assert (record["request_id"], record["trace_id"], record["span_id"]) == (
        "req-1",
        CALLER_TRACE,
        CALLER_SPAN,
    )


@pytest.mark.usefixtures("configure")
def test_lines_have_no_trace_fields_with_tracing_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = log_in_a_span(Settings(_env_file=None), capsys)
    assert line.endswith(" app.test [req-1] hello"), line


def test_the_otlp_provider_reads_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout-model")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = tracing.otlp_provider()
    try:
        assert provider.resource.attributes["service.name"] == "checkout-model"
        assert provider.sampler is ALWAYS_OFF
    finally:
        provider.shutdown()


def test_tracing_without_the_sdk_installed_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "installed", lambda: False)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, tracing="true")
    assert describe_errors(caught.value) == [
        f"ERROR: 'true' is not a valid APP_TRACING: {tracing.INSTALL_HINT}"
    ]


class RecordedProvider(TracerProvider):
    """A tracer provider that records whether it was shut down."""

    shut_down = False

    def shutdown(self) -> None:
        self.shut_down = True
        super().shutdown()


def test_the_app_shuts_down_the_provider_it_made_and_not_one_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = RecordedProvider()
    monkeypatch.setattr(tracing, "otlp_provider", lambda: made)
    with TestClient(create_app(TRACING, MODEL)) as client:
        assert client.post("/predict", json=FIRST.features).status_code == 200
    assert made.shut_down  # its queued spans are exported as the app stops

    given = RecordedProvider()
    with TestClient(create_app(TRACING, MODEL, tracer_provider=given)) as client:
        assert client.post("/predict", json=FIRST.features).status_code == 200
    assert not given.shut_down  # the caller's, to shut down when it is done
