"""Request context: an id for every request, echoed back, one log line each and a
report to each observer.

Written as plain ASGI rather than ``BaseHTTPMiddleware``, which would add a task
and a memory stream to every request.
"""

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Sequence

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.status import HTTP_503_SERVICE_UNAVAILABLE
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id
from app.observers import RequestObserver

REQUEST_ID_HEADER = "x-request-id"
# Accept a caller's id only if it is short and harmless to log.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

SHUTTING_DOWN = "The service is shutting down"

logger = logging.getLogger("app.access")


class RequestContextMiddleware:
    """Give each HTTP request an id, log it, and report it to the observers."""

    def __init__(self, app: ASGIApp, observers: Sequence[RequestObserver] = ()) -> None:
        self.app = app
        self.observers = observers

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

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when the grace period
            # of a shutdown ends, such as an upload that stalled. Answer them
            # 503, rather than let uvicorn log a traceback and send a 500.
            if status:  # the response has started: too late to answer
                raise
            response = JSONResponse(
                {"detail": SHUTTING_DOWN}, HTTP_503_SERVICE_UNAVAILABLE
            )
            await response(scope, receive, send_with_id)
        finally:
            status = status or 500  # what uvicorn answers to an exception
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, status, seconds)
            _log_request(scope["method"], scope["path"], status, seconds)
            request_id.reset(token)


def _log_request(method: str, path: str, status: int, seconds: float) -> None:
    elapsed_ms = seconds * 1000
    logger.info(
        "%s %s %d %.2fms",
        method,
        path,
        status,
        elapsed_ms,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(elapsed_ms, 3),
        },
    )


def _incoming_request_id(scope: Scope) -> str | None:
    value = Headers(scope=scope).get(REQUEST_ID_HEADER)
    if value is None or not _VALID_REQUEST_ID.fullmatch(value):
        return None
    return value
