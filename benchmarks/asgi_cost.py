"""CPU cost of one ``POST /predict`` inside the ASGI app, without server or network.

A development aid beside ``benchmarks.run``: it calls the app directly, many
times, and keeps the fastest of several repeats, so a busy machine barely moves
it. Run it with the Python of an installed render, from the repository root::

    ../iris-classifier/.venv/bin/python -m benchmarks.asgi_cost service bare raw

``--project DIR`` measures the ``app`` package of another render (such as one
of an earlier commit) with the same Python, to compare two forms of the code.
It configures logging as ``python -m app`` does, writing to a temporary file.

``--layers`` measures what each of the service's own layers adds to a
``/predict``: the app as rendered, then without each layer in turn, in one
process, in short spells of thread CPU time taken in turn, as ``--paired`` does
(the layer's cost is the difference). The dependencies of the route cannot be
taken out from outside; the rest can::

    ../iris-classifier/.venv/bin/python -m benchmarks.asgi_cost --layers

``--paired`` measures ``/predict`` and the protocol's infer ("v2") in one app,
in turn, in short spells of thread CPU time, and prints their ratio: on a
machine shared with other work, the two then see the same conditions, and the
best spell of each is steadier than a wall-clock figure::

    ../iris-classifier/.venv/bin/python -m benchmarks.asgi_cost --paired
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging.config
import math
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "floors"))

BODY = json.dumps(
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
).encode()
# The same row as the Open Inference Protocol's infer takes it ("v2").
V2_PATH = "/v2/models/iris-logistic-regression/infer"
V2_BODY = json.dumps(
    {
        "inputs": [
            {
                "name": "features",
                "shape": [1, 4],
                "datatype": "FP32",
                "data": [5.1, 3.5, 1.4, 0.2],
            }
        ]
    }
).encode()
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/predict",
    "raw_path": b"/predict",
    "query_string": b"",
    "root_path": "",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _drop(app: Any, middleware: str) -> None:
    app.user_middleware = [
        m for m in app.user_middleware if m.cls.__name__ != middleware
    ]


def _clear_observers(app: Any) -> None:
    observers = app.state.observers
    for each in (observers.requests, observers.batches, observers.predictions):
        each.clear()


# The service's own layers that --layers takes out, one at a time (named by
# what the app is without): the settings the app is built with, and what is
# then done to it.
LAYERS: dict[str, tuple[dict[str, Any], Callable[[Any], None]]] = {
    "as rendered": ({}, lambda app: None),
    "without the request context (id, log line, observers)": (
        {},
        lambda app: _drop(app, "RequestContextMiddleware"),
    ),
    "without the observers (metrics)": ({}, _clear_observers),
    "without its body size limit": (
        {},
        lambda app: _drop(app, "BodySizeLimitMiddleware"),
    ),
    "without the batcher (APP_MAX_ROWS_PER_RUN=1)": (
        {"max_rows_per_run": 1},
        lambda app: None,
    ),
}


@functools.cache
def _log_to_a_file() -> None:
    """Configure logging as the service does, once, writing to a temporary file."""
    from app.config import Settings
    from app.logs import logging_config

    settings = Settings(_env_file=None)
    log = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)  # noqa: SIM115
    sys.stderr = log  # the service logs each request to stderr
    logging.config.dictConfig(logging_config(settings))


def build(name: str, **settings_values: Any) -> tuple[App, Any]:
    """The app and its lifespan context, ``None`` for the raw app."""
    if name in ("service", "v2"):
        from app.config import Settings
        from app.main import create_app

        settings = Settings(_env_file=None, **settings_values)
        _log_to_a_file()
        service = create_app(settings)
        return service, service.router.lifespan_context(service)
    if name == "bare":
        from bare_fastapi import app as bare

        return bare, bare.router.lifespan_context(bare)
    from raw_asgi import app as raw

    return raw, None


async def cost(app: App, requests: int, v2: bool = False) -> float:
    """Seconds per request, over ``requests`` sequential requests."""
    body = V2_BODY if v2 else BODY
    scope = SCOPE
    if v2:
        length = (b"content-length", str(len(body)).encode())
        headers = [*SCOPE["headers"][:-1], length]
        scope = {**SCOPE, "path": V2_PATH, "raw_path": V2_PATH.encode()}
        scope["headers"] = headers
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            statuses.append(event["status"])

    started = time.perf_counter()
    for _ in range(requests):
        await app({**scope, "headers": list(scope["headers"])}, receive, send)
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
    return elapsed / requests


async def calls(app: App, requests: int, v2: bool = False) -> float:
    """Python function calls per request, counted with ``sys.setprofile``."""
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        await cost(app, requests, v2)
    finally:
        sys.setprofile(None)
    return count / requests


async def in_turn(
    calls: dict[str, tuple[App, bool]], spells: int, requests: int
) -> dict[str, float]:
    """Thread CPU seconds per request of each named (app, v2) pair, the best
    of ``spells`` spells each, the pairs taken in turn."""
    for app, v2 in calls.values():
        await cost(app, requests, v2)  # warm up
    best = dict.fromkeys(calls, math.inf)
    for _ in range(spells):
        for name, (app, v2) in calls.items():
            started = time.thread_time()
            await cost(app, requests, v2)
            spent = (time.thread_time() - started) / requests
            best[name] = min(best[name], spent)
    return best


async def paired(spells: int, requests: int) -> dict[str, float]:
    """/predict and v2, in one app (``in_turn``)."""
    app, lifespan = build("service")
    async with lifespan:
        calls = {"service": (app, False), "v2": (app, True)}
        return await in_turn(calls, spells, requests)


async def layers(spells: int, requests: int) -> dict[str, float]:
    """/predict of the service as rendered and without each of its layers in
    turn, in one process (``in_turn``)."""
    calls: dict[str, tuple[App, bool]] = {}
    async with AsyncExitStack() as stack:
        for name, (settings_values, take_out) in LAYERS.items():
            app, lifespan = build("service", **settings_values)
            take_out(app)
            await stack.enter_async_context(lifespan)
            calls[name] = (app, False)
        return await in_turn(calls, spells, requests)


async def measure(name: str, requests: int, repeats: int, count: bool) -> float:
    app, lifespan = build(name)
    async with AsyncExitStack() as stack:
        if lifespan is not None:
            await stack.enter_async_context(lifespan)
        v2 = name == "v2"
        await cost(app, requests // 10, v2)  # warm up
        if count:
            return await calls(app, min(requests, 100), v2)
        return min([await cost(app, requests, v2) for _ in range(repeats)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "apps",
        nargs="*",
        metavar="{service,v2,bare,raw}",
        help="v2: the service, its Open Inference Protocol infer of the same row",
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--calls", action="store_true", help="count Python calls per request instead"
    )
    parser.add_argument(
        "--project", type=Path, help="import the service's app package from here"
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="/predict and v2 in one app, in turn, in thread CPU time",
    )
    parser.add_argument(
        "--layers",
        action="store_true",
        help="/predict as rendered and without each of the service's layers",
    )
    parser.add_argument(
        "--spells", type=int, default=40, help="with --paired or --layers"
    )
    options = parser.parse_args()
    if options.project:
        sys.path.insert(0, str(options.project.resolve()))
    stdout = sys.stdout
    if options.layers:
        best = asyncio.run(layers(options.spells, 200))
        rendered = best["as rendered"]
        for name, seconds in best.items():
            print(
                f"{name:<55} {seconds * 1e6:6.1f} us of CPU/request,"
                f" {(rendered - seconds) * 1e6:+6.1f} us for the layer",
                file=stdout,
            )
        return
    if options.paired:
        best = asyncio.run(paired(options.spells, 200))
        for name, seconds in best.items():
            print(f"{name:<8} {seconds * 1e6:7.1f} us of CPU/request", file=stdout)
        ratio = best["service"] / best["v2"]
        print(f"v2: {ratio:.2f}x the requests of /predict per CPU-second", file=stdout)
        return
    unknown = set(options.apps) - {"service", "v2", "bare", "raw"}
    if unknown or not options.apps:
        parser.error("name one or more of service, v2, bare, raw; or --paired")
    for name in options.apps:
        figure = asyncio.run(
            measure(name, options.requests, options.repeats, options.calls)
        )
        if options.calls:
            print(f"{name:<8} {figure:7.1f} calls/request", file=stdout, flush=True)
        else:
            print(f"{name:<8} {figure * 1e6:7.1f} us/request", file=stdout, flush=True)


if __name__ == "__main__":
    main()
