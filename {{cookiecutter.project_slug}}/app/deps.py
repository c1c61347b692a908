"""What the routes of both APIs need, in one place: the settings, the model, the
batcher and the caller's identity.

The service's model routes and the inference protocol's take them from here.
A check that belongs to every model route (the API key is one) goes into
``ModelRoute``, which both APIs' model routes are made of.
"""

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, HTTPExceptionHandler, Receive, Scope, Send

from app import model
from app.batching import Batcher, BatcherStoppedError, ModelRunError
from app.config import Settings
from app.errors import error_response
from app.observers import ShedObserver
from app.security import ApiKeys

# The ways a client may send its key, as the OpenAPI document declares them,
# so that the docs' "Authorize" sends it.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
BUSY = "The service is at capacity: retry later."
# Seconds a client turned away is told to wait.
RETRY_AFTER = "1"
NO_KEY = (
    "A valid API key is required: send it as 'Authorization: Bearer <key>'"
    " or as 'X-API-Key: <key>'."
)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def is_ready(request: Request) -> bool:
    """Whether the model is loaded and predictions can be served."""
    return request.app.state.model is not None


def current_model(request: Request) -> model.Model:
    """The model being served; 503 until it is loaded."""
    loaded: model.Model | None = request.app.state.model
    if loaded is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "The model is not loaded yet."
        )
    return loaded


async def get_model(request: Request) -> model.Model:
    """The model being served, as a dependency; 503 until it is loaded."""
    return current_model(request)


async def get_batcher(request: Request) -> Batcher | None:
    """The batcher of concurrent predictions; None when batching is off."""
    batcher: Batcher | None = request.app.state.batcher
    return batcher


def get_caller(request: Request) -> str | None:
    """The name of the client whose API key came with the request; None when
    the service asks for no keys. A missing or wrong key gets 401."""
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled:
        return None
    headers = request.headers
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" else ""
    # Either header may carry the key; one that is right is enough.
    presented = [key for key in (headers.get("x-api-key", ""), bearer) if key]
    caller = next(filter(None, map(keys.identify, presented)), None)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, NO_KEY, headers={"WWW-Authenticate": "Bearer"}
        )
    request.scope.setdefault("state", {})["caller"] = caller
    return caller


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelDep = Annotated[model.Model, Depends(get_model)]
BatcherDep = Annotated[Batcher | None, Depends(get_batcher)]
CallerDep = Annotated[str | None, Depends(get_caller)]


@dataclass(frozen=True)
class BusyAnswer:
    """What a full service answers a request for one of its model routes.

    It is made once, at start-up, by the app's own handler of HTTP errors
    (``admission_state``), so that it is what the app itself would answer: 503
    with Retry-After, in the shape of the route's API. The HTTP protocol writes
    it as it is; anything else can call it as an ASGI app.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status}
        await send({**start, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class Admission:
    """The requests to the model's routes in flight, and how many may be.

    A model route turns a request away itself when the service is full (and
    under any server). uvicorn's httptools protocol, as app/http_protocol.py
    runs it, asks ``turned_away`` first, before the app is called, and writes
    the answer itself: there a refusal costs a fraction of the CPU time it
    costs through the app (its middleware, its routing, its log line), and at
    four times the load a worker carries, three requests in four are refused,
    each taking its share of the event loop from the requests let in. The
    protocol finds the admission in the state the app's lifespan yields
    (``admission_state``).
    """

    limit: int
    in_flight: int = 0
    # Who is told of a refusal.
    sheds: list[ShedObserver] = field(default_factory=list)
    # Set at start-up, by admission_state: the routes it admits to, each with
    # the answer it gets when the service is full.
    answers: list[tuple["ModelRoute", BusyAnswer]] = field(default_factory=list)

    # Requests the HTTP protocol has let through in this turn of the event
    # loop: their heads were read together, and their handlers, which count
    # them in, have not run yet; without them, all would find the same room
    # (a sixth to a third of the refusals reached the app that way). Counted
    # whatever their path (matching a route costs 4 to 19 us a request), and
    # back to 0 once the loop runs the app.
    arriving: int = 0

    def turned_away(self, scope: Scope) -> BusyAnswer | None:
        """The answer of a full service, if it is full and ``scope`` is for one
        of its routes, told to those who count refusals. None: call the app."""
        if self.in_flight + self.arriving >= self.limit:
            for route, answer in self.answers:
                if route.matches(scope)[0] is Match.FULL:
                    scope["route"] = route  # for those who count refusals by route
                    self.shed(scope)
                    return answer
        if not self.arriving:
            asyncio.get_running_loop().call_soon(self._arrived)
        self.arriving += 1
        return None

    def _arrived(self) -> None:
        self.arriving = 0

    def shed(self, scope: Scope) -> None:
        """Tell those who count them of a request turned away."""
        for observe in self.sheds:
            observe(scope)


def model_failure(error: ModelRunError | BatcherStoppedError) -> HTTPException:
    """What a request whose model run failed, or never came, gets: 500 with
    the error, or 503 while the service shuts down (in each API's shape, by the
    app's handler of HTTP errors)."""
    if isinstance(error, ModelRunError):
        return HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR, f"Prediction failed: {error}."
        )
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, "The service is shutting down."
    )


def busy() -> HTTPException:
    """The error a request gets when the service is full."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, BUSY, headers={"Retry-After": RETRY_AFTER}
    )


async def admission_state(app: FastAPI) -> dict[str, Admission]:
    """The app's admission, ready for requests: the state its lifespan yields,
    where the HTTP protocol finds it."""
    admission: Admission = app.state.admission
    answer_error = app.exception_handlers[StarletteHTTPException]
    admission.answers = [
        (route, await busy_answer(route, answer_error))
        for route in app.routes
        if isinstance(route, ModelRoute) and route.serves_model()
    ]
    return {"admission": admission}


async def busy_answer(
    route: "ModelRoute", answer_error: HTTPExceptionHandler
) -> BusyAnswer:
    """What the app's handler of HTTP errors answers a request for ``route``
    when the service is full."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": route.path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    answer = answer_error(Request(scope), busy())
    response = await answer if inspect.isawaitable(answer) else answer
    return BusyAnswer(response.status_code, response.raw_headers, bytes(response.body))


class ModelRoute(APIRoute):
    """A model route: the caller's key is checked, and a request beyond the
    service's capacity turned away, before its body is read.

    FastAPI reads a body before it solves a route's dependencies; checking
    first means a client without a key, or one the service has no room for,
    costs it no body at all.
    """

    def serves_model(self) -> bool:
        """Whether this route serves the model: it takes a key (when keys are
        on) and room in the service."""
        return True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if not self.serves_model():
            return handle

        async def handle_if_let_in(request: Request) -> Response:
            get_caller(request)
            admission: Admission = request.app.state.admission
            if admission.in_flight >= admission.limit:
                admission.shed(request.scope)
                raise busy()
            admission.in_flight += 1
            try:
                return await handle(request)
            finally:
                admission.in_flight -= 1

        return handle_if_let_in


class KeyRequiredMiddleware:
    """Ask for a key on these paths too (and below them), like a model route."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.paths):
            try:
                get_caller(Request(scope))
            except HTTPException as error:
                response = error_response(
                    scope, error.status_code, str(error.detail), error.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def declare_security(app: FastAPI) -> None:
    """With keys on, declare in the app's OpenAPI document that its model routes
    take one, and the ways to send it (so that the docs' "Authorize" does)."""
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build_openapi()  # which keeps it as app.openapi_schema
            keys: ApiKeys = app.state.api_keys
            if keys.enabled:
                schema.setdefault("components", {})["securitySchemes"] = (
                    SECURITY_SCHEMES
                )
                for route in app.routes:
                    if isinstance(route, ModelRoute) and route.serves_model():
                        operations = schema["paths"].get(route.path, {})
                        for method in route.methods or ():
                            if method.lower() in operations:
                                operations[method.lower()]["security"] = SECURITY
            return schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
