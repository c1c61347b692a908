"""Tracing (``APP_TRACING``): OpenTelemetry spans, exported over OTLP/HTTP.

Each request gets a server span from FastAPI's own instrumentation, which
continues the caller's trace when the request carries a ``traceparent`` header.
Each model run gets a span of its own (see ``app/batching.py`` for how a run
that serves several requests relates to them), and every log line carries the
ids of the span it was written in (``app/logs.py``).

The OpenTelemetry SDK reads the standard ``OTEL_*`` variables itself:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_MAX_QUEUE_SIZE`` and
the rest, as the OpenTelemetry specification defines them. The SDK and its
exporter are the optional ``tracing`` extra: a service that does not trace does
not install them, and this module imports them only when tracing is on.
"""

from contextlib import AbstractContextManager, nullcontext
from importlib.util import find_spec
from typing import TYPE_CHECKING

from fastapi.telemetry import TelemetryConfig
from opentelemetry.trace import Span, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# The span of a model run, and its attributes.
MODEL_RUN = "model run"
BATCH_SIZE = "app.batch.size"  # rows in the run
BATCH_REQUESTS = "app.batch.requests"  # requests whose rows it ran
# On a request's span: the seconds its rows waited in the batcher's queue
# before their model run started (the longest, over several runs).
BATCH_WAIT = "app.batch.wait_seconds"
# On a run's link to a request: how many of the run's rows were that request's.
BATCH_ROWS = "app.batch.rows"
# What the modules of the SDK and its exporter are called, to check for them.
MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http")
INSTALL_HINT = (
    "the OpenTelemetry SDK and exporter are not installed: install the service"
    " with its `tracing` extra (poetry install --extras tracing), or leave tracing off"
)

# FastAPI's native OpenTelemetry, when tracing is off: it would otherwise look
# up the global providers on every request, even when none is set up.
OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
_UNTRACED: AbstractContextManager[None] = nullcontext()


def installed() -> bool:
    """Whether the SDK and the OTLP/HTTP exporter can be imported."""
    return all(find_spec(module) is not None for module in MODULES)


def otlp_provider() -> "TracerProvider":
    """A tracer provider that sends its spans to an OTLP/HTTP collector.

    Spans wait in a queue of bounded size (``OTEL_BSP_MAX_QUEUE_SIZE``, 2048)
    and a thread of the SDK exports them in batches, off the requests' path:
    while the collector is slow or down, spans beyond the queue are dropped,
    and no request waits for it.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()  # its sampler and resource from OTEL_*
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def telemetry(provider: "TracerProvider") -> TelemetryConfig:
    """FastAPI's native OpenTelemetry: a server span per request, to ``provider``.

    Only the server span: FastAPI's spans for dependencies, endpoint and
    serialization would triple the spans each request exports, and the model
    run's span shows where the time of a prediction goes. The rest of
    FastAPI's telemetry stays off: the service reports and logs on its own.
    """
    return {
        **OFF,
        "tracer_provider": provider,
        "tracing": True,
        "operation_spans": False,
    }


def model_run(tracer: Tracer | None, rows: int) -> AbstractContextManager[Span | None]:
    """The span of a model run for the request being served, a child of its span;
    nothing without a tracer."""
    if tracer is None:
        return _UNTRACED
    return tracer.start_as_current_span(MODEL_RUN, attributes={BATCH_SIZE: rows})
