"""Prometheus metrics at ``GET /metrics``: requests, latencies, requests in
flight and batches.

What the model predicts is recorded by ``app.prediction_metrics``.

Each application gets its own registry, so tests can build many apps. With
several worker processes each reports its own counts; run one worker per
container and scale with replicas, or see prometheus_client's multiprocess mode.
"""

import functools
from collections.abc import Sequence

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from app.observers import Observers
from app.prediction_metrics import PredictionMetrics

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)  # fmt: skip
BATCH_WAIT_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25
)  # fmt: skip
BATCH_ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class BatchMetrics:
    """Record the rows of each batched model run and how long each row waited."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Histogram(
            "batch_rows",
            "Rows per model run of the /predict batcher.",
            buckets=BATCH_ROWS_BUCKETS,
            registry=registry,
        )
        self.wait = Histogram(
            "batch_wait_seconds",
            "Time a /predict request waited for its batch's model run to start.",
            buckets=BATCH_WAIT_BUCKETS,
            registry=registry,
        )

    def __call__(self, rows: int, waits: Sequence[float]) -> None:
        self.rows.observe(rows)
        for seconds in waits:
            self.wait.observe(seconds)


# Any other method a client invents is counted as "other", so that it cannot
# add series of its own.
METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)


class RequestMetrics:
    """Record each HTTP request under its route template, never its raw path.

    Every label has a bounded set of values: known methods or "other", the
    paths of the app's routes or "unmatched", and the statuses the app sends.
    """

    def __init__(
        self, registry: CollectorRegistry, routes: Sequence[BaseRoute]
    ) -> None:
        self.routes = routes
        self.requests = Counter(
            "http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # labels() locks and checks its arguments on every call; the few
        # series of a service are looked up once and kept instead.
        self._series_of = functools.cache(self._series)

    def __call__(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = route.path if route is not None else self._route_path(scope)
        method = scope["method"] if scope["method"] in METHODS else "other"
        latency, requests = self._series_of(method, path, status)
        latency.observe(seconds)
        requests.inc()

    def _route_path(self, scope: Scope) -> str:
        # FastAPI's routes name themselves in the scope; the docs' routes do
        # not, and a 413 is answered before routing: look them up here, from
        # the root path the app was given (a Mount has moved it on).
        root_path = scope.get("app_root_path", scope.get("root_path", ""))
        at_the_top = {**scope, "root_path": root_path}
        for route in self.routes:
            match, _ = route.matches(at_the_top)
            if match is not Match.NONE:
                return str(getattr(route, "path", "unmatched"))
        return "unmatched"

    def _series(
        self, method: str, route: str, status: int
    ) -> tuple[Histogram, Counter]:
        return (
            self.latency.labels(method, route),
            self.requests.labels(method, route, str(status)),
        )


class InFlightMetrics:
    """Report the requests being answered, against the most uvicorn lets in.

    The request middleware counts them already; the gauge reads its count when
    Prometheus scrapes (the scrape is one of them), so a request pays nothing
    more for it.
    """

    def __init__(self, registry: CollectorRegistry, app: FastAPI) -> None:
        self.app = app
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being answered, this scrape included.",
            registry=registry,
        )
        self.in_flight.set_function(self.count)
        self.limit = Gauge(
            "http_requests_in_flight_limit",
            "Open connections and requests beyond which uvicorn answers 503"
            " (APP_LIMIT_CONCURRENCY).",
            registry=registry,
        )
        self.limit.set(app.state.settings.limit_concurrency)

    def count(self) -> float:
        return float(self.app.state.request_log.in_flight)


class ShedMetrics:
    """Count the requests turned away because the service was full, by route."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.shed = Counter(
            "http_requests_shed",
            "Requests answered 503 at once because the service was at capacity"
            " (APP_MAX_MODEL_REQUESTS), by route.",
            ["route"],
            registry=registry,
        )
        # Looked up once, as in RequestMetrics. A refusal is cheap: labels()
        # would add a ninth to its CPU time (36 to 37 us against 32 to 33,
        # measured).
        self._series_of = functools.cache(self.shed.labels)

    def __call__(self, scope: Scope) -> None:
        self._series_of(str(getattr(scope.get("route"), "path", "unmatched"))).inc()


def instrument(app: FastAPI) -> None:
    """Serve /metrics, and record what the app's observers are told of."""
    registry = CollectorRegistry()
    InFlightMetrics(registry, app)
    observers: Observers = app.state.observers
    observers.requests.append(RequestMetrics(registry, app.router.routes))
    observers.batches.append(BatchMetrics(registry))
    observers.predictions.append(PredictionMetrics(registry))
    observers.sheds.append(ShedMetrics(registry))

    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, include_in_schema=False)
