"""Errors in the shape of the API a request was sent to.

The service's own routes answer an error as FastAPI does, ``{"detail": ...}``;
the inference protocol's routes, under /v2, as the protocol does,
``{"error": ...}``. Whatever answers an error outside a route (a middleware,
an exception handler, the HTTP protocol turning a request away) asks here
which shape it takes.
"""

from collections.abc import Mapping

from fastapi.responses import JSONResponse
from starlette.types import Scope

# Where the inference protocol's routes are.
PROTOCOL_PREFIX = "/v2"
# A protocol error is cut short, so that its size does not grow with the body
# (names and values in it come from the client).
MAX_PROTOCOL_ERROR_TEXT = 1000


def serves_protocol(scope: Scope) -> bool:
    """Whether a request is the inference protocol's: its path is under /v2."""
    path: str = scope["path"].removeprefix(scope.get("root_path", ""))
    return path == PROTOCOL_PREFIX or path.startswith(f"{PROTOCOL_PREFIX}/")


def protocol_error(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An answer in the protocol's shape, ``{"error": message}``, cut short."""
    if len(message) > MAX_PROTOCOL_ERROR_TEXT:
        message = message[:MAX_PROTOCOL_ERROR_TEXT] + "..."
    return JSONResponse({"error": message}, status_code, headers)


def error_response(
    scope: Scope,
    status_code: int,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error in the shape of the API the request was sent to."""
    if serves_protocol(scope):
        return protocol_error(status_code, message, headers)
    return JSONResponse({"detail": message}, status_code, headers)
