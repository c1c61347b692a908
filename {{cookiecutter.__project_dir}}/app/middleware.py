"""Request context: an id for every request, echoed back, and one log line each.

Written as plain ASGI rather than ``BaseHTTPMiddleware``, which would add a task
and a memory stream to every request.
"""

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id

REQUEST_ID_HEADER = b"x-request-id"
# Accept a caller's id only if it is short and harmless to log.
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

logger = logging.getLogger("app.access")


class RequestContextMiddleware:
    """Give each HTTP request an id and log its method, path, status and latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        id_header = (REQUEST_ID_HEADER, rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info(
                "%s %s %d %.2fms",
                scope["method"],
                scope["path"],
                status,
                elapsed_ms,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed_ms, 3),
                },
            )
            request_id.reset(token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            return value.decode() if _VALID_REQUEST_ID.fullmatch(value) else None
    return None
