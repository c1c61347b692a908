"""The HTTP application: ``create_app(settings)``, its lifespan and its routes."""

import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata, resources
from typing import TYPE_CHECKING

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Request,
    Response,
    status,
)
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import DISTRIBUTION, errors, inference_protocol, model, tracing
from app.batching import Batcher, BatcherStoppedError, ModelRunError
from app.config import Settings
from app.deps import (
    Admission,
    BatcherDep,
    KeyRequiredMiddleware,
    ModelDep,
    ModelRoute,
    admission_state,
    declare_security,
    is_ready,
    model_failure,
)
{%- if cookiecutter.include_metrics %}
from app.metrics import instrument
{%- endif %}
from app.middleware import BodySizeLimitMiddleware, RequestContextMiddleware, RequestLog
from app.observers import Observers, report_predictions
from app.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorMessage,
    HealthStatus,
    Instance,
    first_errors,
    unparseable_body,
)
from app.security import ApiKeys

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)
# The model's routes, which take an API key when keys are on; the rest.
model_router = APIRouter(route_class=ModelRoute)
router = APIRouter()

# The answers a route can give besides its own, for the OpenAPI document.
NOT_READY_OR_NO_KEY: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorMessage, "description": "No valid API key (when keys are on)"},
    503: {
        "model": ErrorMessage,
        "description": "The model is not loaded yet, or the service is at capacity",
    },
}
MODEL_ROUTE: dict[int | str, dict[str, object]] = {
    413: {"description": "The body is larger than APP_MAX_BODY_BYTES"},
    **NOT_READY_OR_NO_KEY,
}
# A 422 shortens long values, so that its size does not grow with the body.
MAX_ERROR_TEXT = 100


def create_app(
    settings: Settings | None = None,
    loaded_model: model.Model | None = None,
    tracer_provider: "TracerProvider | None" = None,
) -> FastAPI:
    """Build the application; it loads the model when it starts, unless given one.

    With tracing on, spans go to ``tracer_provider``, by default one that
    exports them over OTLP/HTTP as the ``OTEL_*`` variables say.
    """
    settings = settings or Settings()
    # A provider made here is shut down with the app; one given is the caller's.
    own_provider: TracerProvider | None = None
    if not settings.tracing:
        tracer_provider = None
    elif tracer_provider is None:
        tracer_provider = own_provider = tracing.otlp_provider()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Admission]]:
        app.state.model = loaded = loaded_model or model.load(
            settings.model_path,
            threads=settings.model_threads,
            max_bytes=settings.model_max_bytes,
        )
        logger.info(
            "loaded model %s %s from %s",
            loaded.name,
            loaded.version,
            settings.model_path,
        )
        if settings.max_rows_per_run > 1:
            app.state.batcher = Batcher(
                loaded.predict_batch,
                max_size=settings.max_rows_per_run,
                max_wait=settings.max_wait_per_run_ms / 1000,
                observers=app.state.observers.batches,
                in_flight=lambda: request_log.in_flight,
                tracer=app.state.tracer,
            )
            app.state.batcher.start()
        # What is alive now (modules, the model) lives as long as the process:
        # keep it out of the garbage collector's full passes, which a body of
        # many small arrays would otherwise set off again and again, each one
        # walking all of it while the event loop waits.
        gc.freeze()
        yield await admission_state(app)  # where the HTTP protocol finds it
        if app.state.batcher is not None:
            # The server has let in-flight requests finish; answer any still queued.
            await app.state.batcher.stop()
            app.state.batcher = None
        app.state.model = None
        if own_provider is not None:
            own_provider.shutdown()  # exports the spans still queued

    title, description, version = _package_metadata()
    # Swagger UI and ReDoc are served from the package, not a CDN, so the docs
    # work on networks without internet access.
    app = FastAPIOffline(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        telemetry=tracing.OFF
        if tracer_provider is None
        else tracing.telemetry(tracer_provider),
        # The routes go into the app itself: include_router() would add a layer
        # of routing and body limits to every request. Routes are matched in
        # this order, so the busiest come first: /predict, then /v2's infer.
        routes=[
            *model_router.routes,
            *router.routes,
            *inference_protocol.routes_busiest_first(),
        ],
        exception_handlers={
            RequestValidationError: _validation_error,
            StarletteHTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.settings = settings
    app.state.api_keys = ApiKeys(settings.api_key_pairs(), settings.api_keys_file)
    app.state.observers = Observers()
    app.state.admission = Admission(
        limit=settings.max_model_requests, sheds=app.state.observers.sheds
    )
    declare_security(app)
    inference_protocol.document_bodies(app)
    app.state.model = None
    app.state.batcher = None
    app.state.tracer = (
        None if tracer_provider is None else tracer_provider.get_tracer(__name__)
    )
    # Counts the requests in flight, which the batcher weighs.
    app.state.request_log = request_log = RequestLog()
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    if app.state.api_keys.enabled and settings.api_keys_also_for:
        app.add_middleware(KeyRequiredMiddleware, paths=settings.api_keys_also_for)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
{%- if cookiecutter.include_metrics %}
    instrument(app)
{%- endif %}
    # Outermost, so it sees every request, and times it once for all observers.
    app.add_middleware(
        RequestContextMiddleware,
        observers=app.state.observers.requests,
        request_log=request_log,
    )
    return app


def _package_metadata() -> tuple[str, str, str]:
    about = resources.files("app").joinpath("about.json").read_text(encoding="utf-8")
    title = str(json.loads(about)["name"])
    try:
        package = metadata.metadata(DISTRIBUTION).json
    except metadata.PackageNotFoundError:  # running from a source tree
        return title, "", "0.0.0"
    return title, str(package.get("summary", "")), str(package["version"])


async def _validation_error(
    request: Request, error: RequestValidationError
) -> JSONResponse:
    # FastAPI's default handler echoes the input back; a NaN or an overflowing
    # number cannot be encoded as JSON, which would turn this 422 into a 500.
    shown, more = first_errors(error.errors())
    detail = [
        {
            "loc": [_shorten(part) for part in item["loc"]],
            "msg": _shorten(item["msg"]),
            "type": item["type"],
        }
        for item in shown
    ]
    if more:
        detail.append(
            {"loc": ["body"], "msg": f"{more} more errors", "type": "too_many_errors"}
        )
    return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)


def _shorten(value: str | int) -> str | int:
    # An unknown field's name comes from the client and can be a megabyte long.
    if isinstance(value, str) and len(value) > MAX_ERROR_TEXT:
        return value[:MAX_ERROR_TEXT] + "..."
    return value


async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    # Under /v2 every answer takes the inference protocol's shape, also where no
    # route of it runs: a path it does not have (404), a method a path does not
    # take (405), a body over the limit that came without a length (413).
    if errors.serves_protocol(request.scope):
        return errors.protocol_error(
            error.status_code, str(error.detail), error.headers
        )
    # The routes raise no 400 themselves: FastAPI answers it to a body it cannot
    # parse as JSON, such as invalid UTF-8, an integer too long to read or
    # arrays nested too deep. That is malformed JSON like any other: answer 422.
    if error.status_code == status.HTTP_400_BAD_REQUEST:
        message = _shorten(unparseable_body(error))
        detail = [{"loc": ["body"], "msg": message, "type": "json_invalid"}]
        return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return await http_exception_handler(request, error)


async def _server_error(request: Request, error: Exception) -> Response:
    # What Starlette answers to an exception no handler took, which it then
    # raises again for the server to log; under /v2, in the protocol's shape.
    message = "Internal Server Error"
    if errors.serves_protocol(request.scope):
        return errors.protocol_error(status.HTTP_500_INTERNAL_SERVER_ERROR, message)
    return PlainTextResponse(message, status.HTTP_500_INTERNAL_SERVER_ERROR)


async def _predict_in_batch(
    batcher: Batcher, features: model.Features
) -> model.Prediction:
    try:
        prediction: model.Prediction = await batcher.predict(features)
        return prediction
    except (ModelRunError, BatcherStoppedError) as error:
        raise model_failure(error) from error


async def _batch_within_limit(request: Request) -> None:
    """Refuse an over-long batch with one error, before its instances are validated."""
    try:
        body = await request.json()  # parsed once already, by FastAPI
    except (ValueError, RecursionError):
        return  # not JSON: the validation of the body says so
    instances = body.get("instances") if isinstance(body, dict) else None
    limit = request.app.state.settings.max_rows_per_request
    if isinstance(instances, list) and len(instances) > limit:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "instances"),
                    "msg": f"at most {limit} instances are allowed per batch,"
                    f" got {len(instances)}",
                    "type": "too_long",
                }
            ]
        )


# Routes are matched in the order they are declared: the busiest come first.
@model_router.post("/predict", tags=["model"], responses=MODEL_ROUTE)
async def predict(
    features: Instance, loaded: ModelDep, batcher: BatcherDep, request: Request
) -> model.Prediction:
    """Predict one instance."""
    if batcher is None:
        with tracing.model_run(request.app.state.tracer, 1):
            prediction = loaded.predict(features)
    else:
        prediction = await _predict_in_batch(batcher, features)
    report_predictions(request, [prediction])
    return prediction


@model_router.post(
    "/predict/batch",
    tags=["model"],
    responses=MODEL_ROUTE,
    dependencies=[Depends(_batch_within_limit)],
)
async def predict_batch(
    batch: BatchRequest, loaded: ModelDep, request: Request
) -> BatchResponse:
    """Predict several instances."""
    with tracing.model_run(request.app.state.tracer, len(batch.instances)):
        predictions = loaded.predict_batch(batch.instances)
    report_predictions(request, predictions)
    return BatchResponse(predictions=predictions)


@model_router.get("/model", tags=["model"], responses=NOT_READY_OR_NO_KEY)
async def describe_model(loaded: ModelDep) -> model.ModelInfo:
    """Metadata of the model being served."""
    return loaded.info()


@router.get("/health/live", tags=["health"])
async def live() -> HealthStatus:
    """The process is up."""
    return HealthStatus(status="alive")


@router.get(
    "/health/ready",
    tags=["health"],
    responses={503: {"model": HealthStatus, "description": "Model not loaded"}},
)
async def ready(request: Request, response: Response) -> HealthStatus:
    """The model is loaded and predictions can be served."""
    if not is_ready(request):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return HealthStatus(status="loading")
    return HealthStatus(status="ready")
